"""Batch reproduction: run a study's notebooks with papermill, resumably.

The command line, ``python -m dotlib.reproduce STUDY [--only STEP ...] [--force] [--jobs N]``:
runs :func:`dotlib.reproduce.run_study`, prints its summary table and sets the exit code.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from ..io import write_text
from ..paths import project_root
from .outputs import STAMP_DIR
from .schedule import Terminated, run_study
from .spec import load_study

#: ``timings_<study>.md``, written by every run in which all steps ran: the one result allowed
#: to differ between runs (``make verify`` skips it).
TIMINGS = STAMP_DIR.parent / "timings_{}.md"


def machine() -> str:
    """The CPU model and core count (Linux ``/proc/cpuinfo``, else ``platform``)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} logical cores, {platform.system()}, Python {platform.python_version()}"


def write_timings(study: str, summary: list[dict], wall: float, jobs: int) -> Path:
    """:data:`TIMINGS`: every step's seconds and the wall time of a run in which all of them ran."""
    lines = [f"# Timings of the last full run of the {study} study", "",
             "The one result allowed to differ between runs and machines (it is not checked by `make verify`).",
             "", f"- machine: {machine()}", f"- steps at once: {jobs}", f"- wall time: {wall:.0f} s",
             f"- sum of step times: {sum(r['seconds'] for r in summary):.0f} s", "",
             "| step | seconds |", "| :-- | --: |"]
    lines += [f"| {record['step']} | {record['seconds']:.0f} |" for record in summary]
    return write_text("\n".join(lines) + "\n", str(TIMINGS).format(study))


def set_nproc(study, nproc: int) -> list[str]:
    """Set the ``nproc`` parameter of every step that has one (``make reproduce NPROC=8``);
    returns those steps' names. ``ValueError`` for a count below 1 or a study with no such step."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}")
    steps = [step for step in study.steps.values() if "nproc" in step.parameters]
    if not steps:
        raise ValueError(f"no step of study {study.name!r} has an nproc parameter")
    for step in steps:
        step.parameters["nproc"] = nproc
    return [step.name for step in steps]


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
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="processes per step (GPUs) for every step with an nproc parameter")
    args = parser.parse_args(argv)
    study_path = Path(args.study).resolve()
    os.chdir(project_root(study_path.parent))
    study = load_study(study_path)
    if args.nproc is not None:
        set_nproc(study, args.nproc)
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
    wall = time.perf_counter() - began
    print(f"wall time {wall:.0f} s")
    if summary and all(record["status"] == "ran" for record in summary) and not args.only:
        print(f"wrote {write_timings(study.name, summary, wall, args.jobs or study.jobs)}")
    return 1 if any(record["status"] in ("failed", "blocked") for record in summary) else 0
