"""Running a study: each step's notebook in its own papermill process (all stopped together on
Ctrl-C or SIGTERM), up to ``jobs`` at once, skipping unchanged steps and those a failure blocks."""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path

import yaml

from .assets import missing_assets, missing_assets_message
from .contents import step_assets, step_contents
from .digests import DIGEST_CACHE, ContentDigests, code_digest
from .outputs import STAMP_DIR, failed_dependency, read_stamp, write_stamp
from .parameters import parameter_problems
from .spec import Step, Study

LOG_DIR = Path("runs/reproduce")


class StepFailed(RuntimeError):
    """A step's notebook raised; the message is the error's last line."""


class Terminated(Exception):
    """The runner received SIGTERM (its papermill processes are stopped too)."""


def _terminate(signum: int, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time; restored by run_study
    raise Terminated(f"received signal {signal.Signals(signum).name}")


# ------------------------------------------------------------ papermill processes


#: Seconds papermill gets to stop its kernel after SIGINT before its process group is killed.
STOP_GRACE = 10.0


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Children:
    """The papermill processes running now (each leads its own process group), so that an
    interrupt or SIGTERM can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, command: list[str], log) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise StepFailed("interrupted before it started")
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._running.add(child)
            return child

    def finished(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(child)

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        """SIGINT to every papermill group (papermill stops its kernel), SIGKILL to those left after ``grace`` s."""
        with self._lock:
            self.stopping = True
            running = list(self._running)
        for child in running:
            _signal_group(child, signal.SIGINT)
        deadline = time.monotonic() + grace
        for child in running:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)


def _last_error_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    return lines[-1][:500] if lines else "papermill failed without output"


def _execute(step: Step, log: Path, children: _Children) -> None:
    """Run the notebook in a papermill process into a hidden partial file, renamed on success.

    On failure the partial notebook is kept as ``<output>.failed.ipynb`` to be opened,
    and :class:`StepFailed` carries the error's last line (the whole log is ``log``).
    """
    step.output.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    partial = step.output.with_name(f".{step.output.stem}.partial.ipynb")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(step.parameters, handle)
    command = [sys.executable, "-m", "papermill", str(step.notebook), str(partial), "-f", handle.name,
               "-k", "python3", "--cwd", str(Path.cwd()), "--no-progress-bar"]
    try:
        with open(log, "w", encoding="utf-8") as output:
            child = children.start(command, output)
            try:
                code = child.wait()
            finally:
                children.finished(child)
    finally:
        os.unlink(handle.name)
    if code != 0:
        if partial.is_file():
            os.replace(partial, step.output.with_suffix(".failed.ipynb"))
        if code < 0:  # no traceback to show: say which signal ended it
            raise StepFailed(f"papermill was killed by {signal.Signals(-code).name} (log: {log})")
        raise StepFailed(_last_error_line(log))
    os.replace(partial, step.output)
    step.output.with_suffix(".failed.ipynb").unlink(missing_ok=True)


def _failure_reason(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "".join(traceback.format_exception_only(type(error), error)).strip()
    return lines[-1][:500]


# ------------------------------------------------------------ the scheduler


def _selected_steps(study: Study, only: list[str] | None, jobs: int | None) -> tuple[list[Step], int]:
    """The steps to run (``only``: shell patterns of their names) and how many run at once, once
    every required asset of those steps is here (a missing optional one is a warning) and every selected step's
    parameters are declared by its notebook; ``SystemExit`` or ``ValueError`` otherwise."""
    selected = [
        step for name, step in study.steps.items()
        if not only or any(fnmatch.fnmatch(name, pattern) for pattern in only)
    ]
    if only and not selected:
        raise SystemExit(f"no step matches {only}; steps: {', '.join(study.steps)}")
    used = [asset for asset in study.assets if any(asset in step_assets(study, step) for step in selected)]
    missing = missing_assets(study, used)
    message = missing_assets_message(study, missing)
    if message:
        raise SystemExit(message)
    if missing:
        print(f"warning: {len(missing)} optional asset(s) missing; the study runs without them, and the "
              f"notebooks skip (and say) what needs them:", flush=True)
        print("\n".join(asset.describe() for asset in missing), flush=True)
    problems = [f"step {step.name!r}: {problem}" for step in selected
                for problem in parameter_problems(step.notebook, step.parameters)]
    if problems:
        raise ValueError(f"study {study.name!r} cannot start:\n  - " + "\n  - ".join(problems))
    jobs = study.jobs if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return selected, jobs


def _first_three(names: list[str]) -> str:
    """The first three of ``names``, then ", ..." when there are more."""
    return f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"


class _StudyRun:
    """One :func:`run_study` call: its summary records (by step name), its papermill processes and
    its content digests; decides, step by step, whether it is blocked, unchanged or run."""

    def __init__(self, study: Study, code_digest: str, stamp_dir: Path, force: bool) -> None:
        self.study, self.code_digest, self.stamp_dir, self.force = study, code_digest, stamp_dir, force
        self.digests = ContentDigests(stamp_dir / DIGEST_CACHE)
        self.records: dict[str, dict] = {}
        self.children = _Children()

    def blocked(self, step: Step, header: str) -> bool:
        """Whether ``step``'s inputs can match what a failed (or blocked) step writes; if so it is
        recorded as "blocked" and not run."""
        failed = {record["step"]: record.get("root", record["step"]) for record in self.records.values()
                  if record["status"] in ("failed", "blocked")}
        upstream = failed_dependency(self.study, step, failed)
        if upstream is None:
            return False
        root, through = upstream
        reason = f"skipped: depends on failed step {root}" + (
            "" if through == root else f" (through {through}, not run)")
        print(f"{header}: {reason}", flush=True)
        self.records[step.name] = {"step": step.name, "status": "blocked", "seconds": 0.0,
                                   "error": reason, "root": root}
        return True

    def plan(self, step: Step, header: str) -> tuple[str, dict[str, str]] | None:
        """``step``'s fingerprint and content digests when it must run; None when its stamp shows it
        unchanged with its outputs intact (it is then recorded as "skipped")."""
        contents = step_contents(self.study, step, self.digests)
        fingerprint = step.fingerprint(self.code_digest, contents)
        previous = read_stamp(self.study, step, self.stamp_dir)
        changed = step.changed_outputs(previous.get("outputs", {}))
        if changed and previous.get("fingerprint") == fingerprint:
            print(f"{header}: outputs changed since the step ran ({_first_three(changed)}); running it again",
                  flush=True)
        if not self.force and not changed and previous.get("fingerprint") == fingerprint \
                and step.outputs_exist():
            print(f"{header}: unchanged, skipped", flush=True)
            self.records[step.name] = {"step": step.name, "status": "skipped", "seconds": 0.0}
            return None
        altered = sorted(label for label, value in previous.get("contents", {}).items()
                         if contents.get(label, value) != value)
        if altered and previous.get("fingerprint") != fingerprint:
            print(f"{header}: content changed since the step ran ({_first_three(altered)}); running it again",
                  flush=True)
        return fingerprint, contents

    def run(self, step: Step, header: str, fingerprint: str, contents: dict[str, str]) -> None:
        """Run ``step`` (in a worker thread) and record the outcome; a success writes its stamp."""
        print(f"{header}: running {step.notebook} -> {step.output}", flush=True)
        began = time.perf_counter()
        try:
            _execute(step, LOG_DIR / self.study.name / f"{step.name}.log", self.children)
        except Exception as error:  # one failing step must not lose the others
            seconds = time.perf_counter() - began
            reason = _failure_reason(error)
            print(f"{header}: FAILED after {seconds:.0f} s: {reason}", flush=True)
            self.records[step.name] = {"step": step.name, "status": "failed", "seconds": seconds, "error": reason}
            return
        seconds = time.perf_counter() - began
        stamp = {"fingerprint": fingerprint, "seconds": round(seconds, 1), "outputs": step.output_hashes()}
        if contents:
            stamp["contents"] = contents
        write_stamp(self.study, step, self.stamp_dir, stamp)
        print(f"{header}: done in {seconds:.0f} s", flush=True)
        self.records[step.name] = {"step": step.name, "status": "ran", "seconds": seconds}


def _run_in_order(batch: _StudyRun, selected: list[Step], jobs: int, pool: Executor) -> None:
    """Take the steps in the study's order, each blocked, skipped or submitted to ``pool`` (up to
    ``jobs`` running); a step with ``inputs`` first waits for every step before it, whose outputs
    it may read. Returns when every submitted step is done."""
    running: set[Future] = set()
    for index, step in enumerate(selected, 1):
        header = f"[{index}/{len(selected)}] {step.name}"
        if step.inputs:  # its inputs may be the outputs of earlier steps
            running = wait(running).not_done
            if batch.blocked(step, header):
                continue
        while len(running) >= jobs:
            running = wait(running, return_when=FIRST_COMPLETED).not_done
        planned = batch.plan(step, header)
        if planned is not None:
            running.add(pool.submit(batch.run, step, header, *planned))
    wait(running)


def run_study(study: Study, only: list[str] | None = None, force: bool = False,
              jobs: int | None = None, stamp_dir: str | Path | None = None) -> list[dict]:
    """Run (or skip) every selected step, up to ``jobs`` (default ``study.jobs``) at once.

    Returns one summary record per step, in the study's order: status "ran", "skipped"
    (unchanged), "failed" (with ``error``) or "blocked" (not run: a step whose outputs it
    reads failed; ``error`` says "skipped: depends on failed step X"). Stamps and the digest
    cache go to ``stamp_dir`` (default :data:`STAMP_DIR`).
    """
    selected, jobs = _selected_steps(study, only, jobs)
    digest = code_digest()
    stamp_dir = STAMP_DIR if stamp_dir is None else Path(stamp_dir)
    batch = _StudyRun(study, digest, stamp_dir, force)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                _run_in_order(batch, selected, jobs, pool)
            except (KeyboardInterrupt, Terminated):
                batch.children.stop_all()
                raise
    finally:
        batch.digests.save()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler if previous_handler is not None else signal.SIG_DFL)
    return [batch.records[step.name] for step in selected]
