"""Progress lines (dotlib.progress): what a notebook or a log file shows of a long loop."""

from __future__ import annotations

import io

from dotlib.progress import LineProgress


def _lines(unit: str, count: int) -> list[str]:
    out = io.StringIO()
    for _ in LineProgress(range(count), desc="task", unit=unit, file=out):
        pass
    return out.getvalue().splitlines()


def test_two_lines_with_the_unit_in_the_plural() -> None:
    first, last = _lines("batch", 2)
    assert first == "task: 2 batches to do"
    assert last.startswith("task: 2/2 batches in 00:00 (") and last.endswith(" s/batch)")
    assert _lines("image", 3)[0] == "task: 3 images to do"
    assert _lines("image", 1)[0] == "task: 1 image to do"
    assert _lines("it", 4)[0] == "task: 4 it to do"                  # tqdm's unit stays as it is
