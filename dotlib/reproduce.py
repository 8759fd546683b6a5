"""Batch reproduction: run a study's notebooks with papermill, resumably.

A study is a YAML file (``studies/embedded.yaml``, ``studies/paper.yaml``)::

    name: embedded
    jobs: 2                      # steps run at once (each in its own papermill process)
    assets:                      # checked before any work; all missing ones are listed
      - {kind: folder, path: "${DOTLIB_IMAGENET:-assets/imagenet/val}", what: "...", how: "..."}
    steps:
      toy:
        notebook: notebooks/01_toy_gaussian.ipynb
        output: results/toy/01_toy_gaussian.ipynb
        parameters: {dimension: 16}
        inputs: []               # files (globs) whose content the step depends on
        outputs: [results/toy/estimators.csv]

A step is skipped when its fingerprint — the notebook's code, its parameters, the
``dotlib`` sources and committed weights, and its ``inputs`` — equals the one stored
after its last successful run, and its outputs exist unchanged: the stamp records the
SHA-256 of every declared output, and an output edited or overwritten since (a hand run
writing into ``results/``) makes the step run again. A failing step is reported at
the end and does not stop the others. Executed notebooks are written atomically. Up to
``jobs`` steps run at once; a step with ``inputs`` waits for every step before it, whose
outputs it may read. Each step's papermill log is ``runs/reproduce/<study>/<step>.log``.

The YAML is checked before anything runs: unknown or misspelt keys, duplicate keys (steps
of the same name), wrong types, and parameters that a step's notebook does not declare in
its cell tagged ``parameters`` (or strings where the notebook's default is a number) are
errors naming the key and what is known. Top-level keys starting with ``x-`` hold YAML
anchors and are ignored. SIGTERM, like Ctrl-C, stops the papermill processes too.

Run ``python -m dotlib.reproduce studies/embedded.yaml [--only STEP ...] [--force] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import glob
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .io import write_text
from .paths import PACKAGE_DIR, project_root

__all__ = ["Asset", "Step", "Study", "Terminated", "check_parameters", "load_study", "missing_assets",
           "notebook_parameters", "run_study"]

STAMP_DIR = Path("results/.stamps")
LOG_DIR = Path("runs/reproduce")
_ENV_PATTERN = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(:-(?P<default>[^}]*))?\}")


def expand(text: str) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` from the environment."""
    def replace(match: re.Match) -> str:
        value = os.environ.get(match["name"])
        if value:
            return value
        if match["default"] is not None:
            return match["default"]
        raise KeyError(f"environment variable {match['name']} is not set and has no default")
    return _ENV_PATTERN.sub(replace, text)


def _expand_values(value):
    """``expand`` every string inside nested lists and mappings."""
    if isinstance(value, str):
        return expand(value)
    if isinstance(value, list):
        return [_expand_values(item) for item in value]
    if isinstance(value, dict):
        return {key: _expand_values(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Asset:
    """Something a study needs that cannot be downloaded at run time."""

    kind: str  # "file", "folder", "huggingface" (a model id in the local HF cache)
    path: str
    what: str
    how: str

    def is_present(self) -> bool:
        if self.kind == "file":
            return Path(self.path).is_file()
        if self.kind == "folder":
            return Path(self.path).is_dir() and any(Path(self.path).iterdir())
        if self.kind == "huggingface":
            if Path(self.path).is_dir():
                return (Path(self.path) / "config.json").is_file()
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(self.path, "config.json")
            return isinstance(found, str)
        raise ValueError(f"unknown asset kind {self.kind!r}; use file, folder or huggingface")

    def location(self) -> str:
        if self.kind == "huggingface" and not Path(self.path).is_dir():
            from huggingface_hub.constants import HF_HUB_CACHE

            return f"Hugging Face id {self.path} (cache: {HF_HUB_CACHE})"
        return str(Path(self.path))


@dataclass
class Step:
    """One papermill run of a notebook with parameters."""

    name: str
    notebook: Path
    output: Path
    parameters: dict = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def fingerprint(self, code_digest: str) -> str:
        digest = hashlib.sha256()
        digest.update(code_digest.encode())
        digest.update(_notebook_code(self.notebook).encode())
        digest.update(json.dumps(self.parameters, sort_keys=True, default=str).encode())
        for path in _expand_globs(self.inputs):
            digest.update(str(path).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

    def outputs_exist(self) -> bool:
        return Path(self.output).is_file() and all(_expand_globs([p]) for p in self.outputs)

    def output_hashes(self) -> dict[str, str]:
        """SHA-256 of every declared output file (globs expanded), as the stamp records them."""
        return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in _expand_globs(self.outputs)}

    def changed_outputs(self, recorded: dict[str, str]) -> list[str]:
        """Declared outputs whose content differs from ``recorded`` (the stamp), or that are gone."""
        current = self.output_hashes()
        return sorted(path for path, digest in recorded.items() if current.get(path) != digest)


@dataclass
class Study:
    name: str
    steps: dict[str, Step]
    assets: list[Asset]
    jobs: int = 1


def _expand_globs(patterns: list[str]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        found.update(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return sorted(found)


def _notebook_code(path: Path) -> str:
    """The sources of a notebook's cells (outputs and metadata ignored)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return "\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in cells
    )


def code_digest() -> str:
    """Hash of every ``dotlib`` source file and committed weight file."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first.line + 1}; "
                                f"only one may exist)", key_node.start_mark)
        return super().construct_mapping(node, deep)


#: Keys of a study file, of a step and of an asset, with their types (required ones marked).
_STUDY_KEYS = {"name": str, "jobs": int, "assets": list, "steps": dict}
_STEP_KEYS = {"notebook": str, "output": str, "parameters": dict, "inputs": list, "outputs": list}
_STEP_REQUIRED = ("notebook", "output")
_ASSET_KEYS = {"kind": str, "path": str, "what": str, "how": str}
_ASSET_KINDS = ("file", "folder", "huggingface")
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}


def _check_keys(where: str, entry: object, schema: dict[str, type], required: tuple[str, ...] = (),
                anchors: bool = False) -> None:
    """Unknown keys (with the closest known one), missing required keys and wrong types -> ``ValueError``.

    ``anchors``: keys starting with ``x-`` (holders of YAML anchors) are allowed.
    """
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping with keys {', '.join(schema)}, got {entry!r}")
    known = ", ".join(sorted(schema))
    for key in entry:
        if key not in schema and not (anchors and str(key).startswith("x-")):
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown key {key!r}{hint}; known keys: {known}")
    missing = [key for key in required if key not in entry]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(map(repr, missing))}; keys: {known}")
    for key, kind in schema.items():
        value = entry.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, got {value!r}")
        if kind is list and value is not None and key in ("inputs", "outputs") \
                and not all(isinstance(item, str) for item in value):
            raise ValueError(f"{where}: {key!r} must be a list of paths (strings), got {value!r}")


def load_study(path: str | Path) -> Study:
    """Parse a study YAML file, with clear errors for malformed entries (see the module notes)."""
    path = Path(path)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise FileNotFoundError(f"no study file {path}; known studies: {', '.join(known) or 'none'}")
    try:
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not a valid study YAML file: {error}") from None
    _check_keys(f"{path}: the study", spec, _STUDY_KEYS, anchors=True)
    if not isinstance(spec.get("steps"), dict) or not spec["steps"]:
        raise ValueError(f"{path}: a study needs a non-empty 'steps' mapping")
    steps = {}
    for name, entry in spec["steps"].items():
        _check_keys(f"{path}: step {name!r}", entry, _STEP_KEYS, _STEP_REQUIRED)
        steps[name] = Step(
            name=name,
            notebook=Path(entry["notebook"]),
            output=Path(entry["output"]),
            parameters=_expand_values(dict(entry.get("parameters") or {})),
            inputs=list(entry.get("inputs") or []),
            outputs=list(entry.get("outputs") or []),
        )
        if not steps[name].notebook.is_file():
            raise FileNotFoundError(f"{path}: step {name!r}: notebook {steps[name].notebook} not found")
    assets = []
    for index, entry in enumerate(spec.get("assets") or []):
        _check_keys(f"{path}: asset {index + 1}", entry, _ASSET_KEYS, tuple(_ASSET_KEYS))
        if entry["kind"] not in _ASSET_KINDS:
            raise ValueError(f"{path}: asset {index + 1}: kind must be one of {', '.join(_ASSET_KINDS)}, "
                             f"got {entry['kind']!r}")
        assets.append(Asset(kind=entry["kind"], path=expand(str(entry["path"])),
                            what=entry["what"], how=entry["how"]))
    jobs = spec.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"{path}: jobs must be a positive integer, got {jobs!r}")
    return Study(name=spec.get("name", path.stem), steps=steps, assets=assets, jobs=jobs)


_NO_LITERAL = object()  # a default that is not a Python literal (an expression)


def notebook_parameters(notebook: str | Path) -> dict[str, object] | None:
    """The names assigned in ``notebook``'s cell(s) tagged ``parameters``, with their defaults.

    A default that is not a literal is given as an opaque placeholder. Returns None when
    no cell carries the tag (papermill would then inject parameters nobody reads).
    """
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [cell for cell in cells if cell.get("cell_type") == "code"
              and "parameters" in (cell.get("metadata", {}).get("tags") or [])]
    if not tagged:
        return None
    names: dict[str, object] = {}
    for cell in tagged:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as error:
            raise ValueError(f"{notebook}: its parameters cell is not valid Python ({error})") from None
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                targets, value = statement.targets, statement.value
            elif isinstance(statement, ast.AnnAssign):
                targets, value = [statement.target], statement.value
            else:
                continue
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        names[node.id] = _literal(value) if isinstance(target, ast.Name) else _NO_LITERAL
    return names


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else _NO_LITERAL
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_LITERAL


def _parameter_problems(notebook: Path, parameters: dict) -> list[str]:
    declared = notebook_parameters(notebook)
    if declared is None:
        return [f"notebook {notebook} has no cell tagged 'parameters', so it reads none of "
                f"{', '.join(map(repr, parameters))}"] if parameters else []
    known = ", ".join(sorted(declared)) or "none"
    problems = []
    for name, value in parameters.items():
        if name not in declared:
            close = difflib.get_close_matches(str(name), list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"parameter {name!r}{hint} is not declared by notebook {notebook}; "
                            f"its parameters are: {known}")
            continue
        default = declared[name]
        is_number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if isinstance(value, str) and (is_number or isinstance(default, bool)):
            kind = "boolean" if isinstance(default, bool) else "number"
            problems.append(f"parameter {name!r} of notebook {notebook} is the string {value!r}, but its "
                            f"default is the {kind} {default!r}: write it without quotes (an expanded "
                            f"${{VARIABLE}} is always a string)")
    return problems


def check_parameters(notebook: str | Path, parameters: dict) -> None:
    """Raise ``ValueError`` if ``parameters`` name one that ``notebook`` does not declare (in its cell
    tagged ``parameters``), or give a string where its default is a number or a boolean."""
    problems = _parameter_problems(Path(notebook), dict(parameters or {}))
    if problems:
        raise ValueError("; ".join(problems))


def missing_assets(study: Study) -> list[Asset]:
    """The study's assets that are not on this machine."""
    return [asset for asset in study.assets if not asset.is_present()]


def _stamp_path(study: Study, step: Step) -> Path:
    return STAMP_DIR / study.name / f"{step.name}.json"


class StepFailed(RuntimeError):
    """A step's notebook raised; the message is the error's last line."""


class Terminated(Exception):
    """The runner received SIGTERM (its papermill processes are stopped too)."""


def _terminate(signum: int, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time; restored by run_study
    raise Terminated(f"received signal {signal.Signals(signum).name}")


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


def run_study(study: Study, only: list[str] | None = None, force: bool = False,
              jobs: int | None = None) -> list[dict]:
    """Run (or skip) every selected step, up to ``jobs`` (default ``study.jobs``) at once.

    Returns one summary record per step, in the study's order.
    """
    missing = missing_assets(study)
    if missing:
        lines = [f"study {study.name!r} cannot start: {len(missing)} asset(s) missing"]
        for asset in missing:
            lines.append(f"  - {asset.what}: expected at {asset.location()}\n    how: {asset.how}")
        raise SystemExit("\n".join(lines))
    selected = [
        step for name, step in study.steps.items()
        if not only or any(fnmatch.fnmatch(name, pattern) for pattern in only)
    ]
    if only and not selected:
        raise SystemExit(f"no step matches {only}; steps: {', '.join(study.steps)}")
    problems = [f"step {step.name!r}: {problem}" for step in selected
                for problem in _parameter_problems(step.notebook, step.parameters)]
    if problems:
        raise ValueError(f"study {study.name!r} cannot start:\n  - " + "\n  - ".join(problems))
    jobs = study.jobs if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    digest = code_digest()
    records: dict[str, dict] = {}
    children = _Children()

    def run(step: Step, header: str, fingerprint: str) -> None:
        print(f"{header}: running {step.notebook} -> {step.output}", flush=True)
        began = time.perf_counter()
        try:
            _execute(step, LOG_DIR / study.name / f"{step.name}.log", children)
        except Exception as error:  # one failing step must not lose the others
            seconds = time.perf_counter() - began
            reason = _failure_reason(error)
            print(f"{header}: FAILED after {seconds:.0f} s: {reason}", flush=True)
            records[step.name] = {"step": step.name, "status": "failed", "seconds": seconds, "error": reason}
            return
        seconds = time.perf_counter() - began
        write_text(json.dumps({"fingerprint": fingerprint, "seconds": round(seconds, 1),
                               "outputs": step.output_hashes()}, indent=1) + "\n", _stamp_path(study, step))
        print(f"{header}: done in {seconds:.0f} s", flush=True)
        records[step.name] = {"step": step.name, "status": "ran", "seconds": seconds}

    running: set[Future] = set()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                for index, step in enumerate(selected, 1):
                    if step.inputs:  # its inputs may be the outputs of earlier steps
                        running = wait(running).not_done
                    while len(running) >= jobs:
                        running = wait(running, return_when=FIRST_COMPLETED).not_done
                    fingerprint = step.fingerprint(digest)
                    previous = _stamp_path(study, step)
                    previous = json.loads(previous.read_text()) if previous.is_file() else {}
                    header = f"[{index}/{len(selected)}] {step.name}"
                    changed = step.changed_outputs(previous.get("outputs", {}))
                    if changed and previous.get("fingerprint") == fingerprint:
                        print(f"{header}: outputs changed since the step ran ({', '.join(changed[:3])}"
                              f"{', ...' if len(changed) > 3 else ''}); running it again", flush=True)
                    if not force and not changed and previous.get("fingerprint") == fingerprint \
                            and step.outputs_exist():
                        print(f"{header}: unchanged, skipped", flush=True)
                        records[step.name] = {"step": step.name, "status": "skipped", "seconds": 0.0}
                        continue
                    running.add(pool.submit(run, step, header, fingerprint))
                wait(running)
            except (KeyboardInterrupt, Terminated):
                children.stop_all()
                raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler if previous_handler is not None else signal.SIG_DFL)
    return [records[step.name] for step in selected]


def _failure_reason(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "".join(traceback.format_exception_only(type(error), error)).strip()
    return lines[-1][:500]


def format_summary(summary: list[dict]) -> str:
    """A plain-text table of what ran, what was skipped, what failed, and how long."""
    width = max([len(record["step"]) for record in summary] + [4])
    lines = [f"{'step':<{width}}  {'status':<8} {'seconds':>8}"]
    for record in summary:
        lines.append(f"{record['step']:<{width}}  {record['status']:<8} {record['seconds']:8.1f}")
        if record["status"] == "failed":
            lines.append(f"{'':<{width}}  -> {record['error']}")
    total = sum(record["seconds"] for record in summary)
    counts = {status: sum(r["status"] == status for r in summary) for status in ("ran", "skipped", "failed")}
    lines.append(f"{'total':<{width}}  {counts['ran']} ran, {counts['skipped']} skipped, "
                 f"{counts['failed']} failed, {total:.0f} s")
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
    return 1 if any(record["status"] == "failed" for record in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
