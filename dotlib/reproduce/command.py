"""Batch reproduction: run a study's notebooks with papermill, resumably.

The command line, ``python -m dotlib.reproduce STUDY [--only STEP ...] [--force] [--jobs N]``:
runs :func:`dotlib.reproduce.run_study`, prints its summary table and sets the exit code.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..paths import project_root
from .schedule import Terminated, run_study
from .spec import load_study


def format_summary(summary: list[dict]) -> str:
    """A plain-text table of what ran, what was skipped, what failed, and how long."""
    width = max([len(record["step"]) for record in summary] + [4])
    lines = [f"{'step':<{width}}  {'status':<8} {'seconds':>8}"]
    for record in summary:
        lines.append(f"{record['step']:<{width}}  {record['status']:<8} {record['seconds']:8.1f}")
        if record["status"] in ("failed", "blocked"):
            lines.append(f"{'':<{width}}  -> {record['error']}")
    total = sum(record["seconds"] for record in summary)
    counts = {status: sum(r["status"] == status for r in summary)
              for status in ("ran", "skipped", "failed", "blocked")}
    blocked = f", {counts['blocked']} not run (a step they read failed)" if counts["blocked"] else ""
    lines.append(f"{'total':<{width}}  {counts['ran']} ran, {counts['skipped']} skipped, "
                 f"{counts['failed']} failed{blocked}, {total:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dotlib.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study YAML file, e.g. studies/embedded.yaml")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="steps to run (shell patterns)")
    parser.add_argument("--force", action="store_true", help="re-run steps even when unchanged")
    parser.add_argument("--jobs", type=int, metavar="N", help="steps run at once (default: the study's jobs)")
    args = parser.parse_args(argv)
    study_path = Path(args.study).resolve()
    os.chdir(project_root(study_path.parent))
    study = load_study(study_path)
    began = time.perf_counter()
    try:
        summary = run_study(study, only=args.only, force=args.force, jobs=args.jobs)
    except KeyboardInterrupt:
        print("\ninterrupted: finished steps are kept; run the same command again to resume", flush=True)
        return 130
    except Terminated:
        print("\nterminated (SIGTERM): its papermill processes were stopped; finished steps are kept; "
              "run the same command again to resume", flush=True)
        return 143
    print("\n" + format_summary(summary))
    print(f"wall time {time.perf_counter() - began:.0f} s")
    return 1 if any(record["status"] in ("failed", "blocked") for record in summary) else 0
