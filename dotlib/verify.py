"""``make verify``: re-run a study in a temporary copy and compare its results with the committed ones.

Every CSV is compared value by value at each column's declared precision
(:mod:`dotlib.precision`, the rule ``make reproduce`` keeps committed files by); Markdown,
LaTeX and JSON tables are compared as text. Figures, collages, executed notebooks, step stamps and
``timings_<study>.md`` are not compared (pixels and timings). Prints one line per file that differs, and exits 1
if any does.

Run ``python -m dotlib.verify [studies/embedded.yaml]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from .paths import project_root
from .precision import moved_values

__all__ = ["COMPARED_SUFFIXES", "compare_results", "main"]

#: Result files compared: values (CSV) and tables (text).
COMPARED_SUFFIXES = (".csv", ".md", ".tex", ".json")
_IGNORED_PARTS = (".stamps", "train")   # stamps hold timings; train/ is written by `make train-embedded`


def _csv_differences(committed: Path, fresh: Path) -> str | None:
    moved = moved_values(pd.read_csv(committed), pd.read_csv(fresh), limit=1)
    return moved[0] if moved else None


def compare_results(committed: Path, fresh: Path) -> dict[str, str]:
    """``{relative path: what differs}`` for the result files of ``committed`` vs ``fresh`` folders."""
    differences: dict[str, str] = {}
    names = set()
    for root in (committed, fresh):
        names |= {p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and p.suffix in COMPARED_SUFFIXES and not p.name.startswith("timings")
                  and not any(part in _IGNORED_PARTS for part in p.relative_to(root).parts)}
    for name in sorted(names):
        old, new = committed / name, fresh / name
        if not old.is_file() or not new.is_file():
            differences[str(name)] = "only in the re-run" if new.is_file() else "not written by the re-run"
        elif name.suffix == ".csv":
            found = _csv_differences(old, new)
            if found:
                differences[str(name)] = found
        elif old.read_bytes() != new.read_bytes():
            differences[str(name)] = "text differs"
    return differences


def _copy_project(root: Path, destination: Path) -> None:
    """The tracked project files (git ls-files), without the committed results."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if name.startswith("results/"):
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dotlib.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", default="studies/embedded.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and print its path")
    args = parser.parse_args(argv)
    root = project_root()
    folder = Path(tempfile.mkdtemp(prefix="dotlib-verify-"))
    try:
        _copy_project(root, folder)
        environment = {**os.environ, "PYTHONPATH": str(folder)}
        print(f"re-running {args.study} in {folder} (a full reproduction) ...", flush=True)
        status = subprocess.run([sys.executable, "-m", "dotlib.reproduce", args.study, "--force"],
                                cwd=folder, env=environment).returncode
        if status != 0:
            print(f"the re-run failed (exit {status}); see {folder}/runs/reproduce/", file=sys.stderr)
            return 1
        differences = compare_results(root / "results", folder / "results")
        for name, why in differences.items():
            print(f"DIFFERS results/{name}: {why}")
        print(f"{len(differences)} result file(s) differ" if differences else "every compared result file agrees")
        return 1 if differences else 0
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
