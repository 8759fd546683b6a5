"""What steps write: their output globs and whether two globs can overlap, the steps a failed
one blocks, and the stamps that record each step's last successful run."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path

from ..io import write_text
from .spec import Step, Study

STAMP_DIR = Path("results/.stamps")


# ------------------------------------------------------------ paths


def normal_path(path: str) -> str:
    """``path`` made absolute (from the current folder, ``~`` expanded) and normalised."""
    return os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(path)))


def path_contains(outer: str, inner: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies inside it (both normalised)."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def written_by_a_step(study: Study, path: str) -> bool:
    """Whether ``path`` (normalised) is written by a step: matches declared outputs, or lies in an output folder."""
    for step in study.steps.values():
        folder = normal_path(str(step.output.parent))
        if folder != os.getcwd() and path_contains(folder, path):
            return True
        if any(fnmatch.fnmatchcase(path, normal_path(pattern)) for pattern in step.outputs + [str(step.output)]):
            return True
    return False


# ------------------------------------------------------------ overlapping globs


_MAGIC = re.compile(r"[*?[]")


def _segments_overlap(a: str, b: str) -> bool:
    """Whether one file name can match both glob segments (a conservative test for two patterns)."""
    if not _MAGIC.search(a):
        return fnmatch.fnmatchcase(a, b)
    if not _MAGIC.search(b):
        return fnmatch.fnmatchcase(b, a)
    head_a, head_b = _MAGIC.split(a)[0], _MAGIC.split(b)[0]
    tail_a = a[max(a.rfind(char) for char in "*?]") + 1:]
    tail_b = b[max(b.rfind(char) for char in "*?]") + 1:]
    return (head_a.startswith(head_b) or head_b.startswith(head_a)) and \
        (tail_a.endswith(tail_b) or tail_b.endswith(tail_a))


def _parts_overlap(a: list[str], b: list[str]) -> bool:
    if a and a[0] == "**":
        return _parts_overlap(a[1:], b) or (bool(b) and _parts_overlap(a, b[1:]))
    if b and b[0] == "**":
        return _parts_overlap(a, b[1:]) or (bool(a) and _parts_overlap(a[1:], b))
    if not a or not b:
        return not a and not b
    return _segments_overlap(a[0], b[0]) and _parts_overlap(a[1:], b[1:])


def globs_overlap(a: str, b: str) -> bool:
    """Whether some path can match both glob patterns (``glob`` semantics: ``*`` within a
    folder, ``**`` any depth). Conservative: two wildcard segments whose literal heads and
    tails agree are taken to overlap."""
    return _parts_overlap(normal_path(a).split(os.sep), normal_path(b).split(os.sep))


# ------------------------------------------------------------ failed dependencies


def _written_by(study: Study, step: Step) -> list[str]:
    """Glob patterns of what ``step`` writes: its declared outputs, its output notebook, and its
    output folder when no other step's notebook is written in it (or below it)."""
    patterns = list(step.outputs) + [str(step.output)]
    folder = normal_path(str(step.output.parent))
    shared = folder == os.getcwd() or any(
        path_contains(folder, normal_path(str(other.output.parent)))
        for other in study.steps.values() if other is not step)
    if not shared:
        patterns.append(os.path.join(folder, "**"))
    return patterns


def failed_dependency(study: Study, step: Step, failed: dict[str, str]) -> tuple[str, str] | None:
    """``(root, name)``: the first step ``name`` of ``failed`` (name -> the failed step it was not run
    for, itself when it failed) whose outputs ``step``'s inputs can match; None if there is none."""
    for name, root in failed.items():
        written = _written_by(study, study.steps[name])
        if any(globs_overlap(pattern, output) for pattern in step.inputs for output in written):
            return root, name
    return None


# ------------------------------------------------------------ stamps


def _stamp_path(study: Study, step: Step, stamp_dir: Path = STAMP_DIR) -> Path:
    return Path(stamp_dir) / study.name / f"{step.name}.json"


def read_stamp(study: Study, step: Step, stamp_dir: Path) -> dict:
    """The stamp of ``step``'s last successful run (fingerprint, seconds, output hashes and content
    digests); empty when it has none."""
    path = _stamp_path(study, step, stamp_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_stamp(study: Study, step: Step, stamp_dir: Path, stamp: dict) -> None:
    """Record ``stamp`` as ``step``'s last successful run (atomically)."""
    write_text(json.dumps(stamp, indent=1) + "\n", _stamp_path(study, step, stamp_dir))
