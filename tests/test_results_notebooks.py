"""The executed notebooks committed under results/ are clean records of the current notebooks.

Each was written by the study runner (``make reproduce``, ``make train-embedded``): its code
cells are those of ``notebooks/`` today (plus papermill's injected parameters), and its
outputs hold no stderr stream (progress-bar fragments, library warnings) and no absolute
path of the machine that ran it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dotlib.paths import project_root

ROOT = project_root()

#: An absolute path of a machine: a home or work folder, a Python install. (``/tmp/`` is left out:
#: the reports name clean-fid's fixed place for the Inception weights, the same on every machine.)
MACHINE_PATH = re.compile(r"(/home/|/Users/|/root/|/work/|site-packages|[A-Z]:\\)")


def _committed_notebooks() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "results/*.ipynb"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return [ROOT / name for name in listed]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _output_texts(cell: dict):
    for output in cell.get("outputs", []):
        yield output.get("name", output["output_type"]), "".join(output.get("text", []))
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/"):
                yield kind, "".join(value)


NOTEBOOKS = _committed_notebooks()


def test_every_committed_notebook_is_checked() -> None:
    """The nine study notebooks and the two training records (a guard against an empty glob)."""
    assert len(NOTEBOOKS) == 11
    assert {path.parent.name for path in NOTEBOOKS} >= {"results", "toy", "operators", "train"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_stderr_and_no_machine_path(path: Path) -> None:
    found = [(index, kind, text[:120]) for index, cell in enumerate(_cells(path))
             for kind, text in _output_texts(cell) if kind == "stderr" or MACHINE_PATH.search(text)]
    assert not found, f"{len(found)} outputs, the first: {found[0]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_code_is_the_current_notebook(path: Path) -> None:
    executed = _cells(path)
    source = ROOT / json.loads(path.read_text(encoding="utf-8"))["metadata"]["papermill"]["input_path"]
    ran = ["".join(cell["source"]) for cell in executed
           if "injected-parameters" not in cell["metadata"].get("tags", [])]
    assert ran == ["".join(cell["source"]) for cell in _cells(source)]


def test_the_path_pattern_finds_what_the_old_records_held() -> None:
    """The tqdm warning that the first training records held, with the machine's path."""
    warning = "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found."
    assert MACHINE_PATH.search(warning)
    assert not MACHINE_PATH.search("wrote results/tasks/sr4__mse_net/metrics.csv")
