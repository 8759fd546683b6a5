"""Batch reproduction: run a study's notebooks with papermill, resumably.

A study is a YAML file (``studies/embedded.yaml``, ``studies/paper.yaml``)::

    name: embedded
    jobs: 2                      # steps run at once (each in its own papermill process)
    assets:                      # checked before any work; all missing ones are listed at once
      - {kind: folder, path: "${DOTLIB_IMAGENET:-assets/imagenet/val}", min_files: 34, what: "...", how: "..."}
      - {kind: file, path: "${DOTLIB_INCEPTION_PATH:-/tmp}/inception-2015-12-05.pt", optional: true, ...}
    steps:
      toy:
        notebook: notebooks/01_toy_gaussian.ipynb
        output: results/toy/01_toy_gaussian.ipynb
        parameters: {dimension: 16}
        inputs: []               # files (globs) whose content the step depends on
        outputs: [results/toy/estimators.csv]

Assets are what a study needs and cannot download at run time. Each has a ``kind``:
``file``, ``folder`` (``min_files``: the image files it must hold at least, counted
recursively as ``dotlib.data.ImageFolder`` does), ``huggingface`` (a model id in the local
Hugging Face cache, or a local diffusers folder) or ``cuda`` (no path: a GPU that
``torch.cuda.is_available()`` sees); ``what`` it is for and ``how`` to get it. Before any
step runs, every missing required asset is listed at once (what, where, how) and the run
stops; a missing ``optional: true`` asset (a perception metric's weights) is listed as a
warning, and the notebooks skip what needs it. ``${NAME:-default}`` in paths and
parameters is read from the environment (defaults may nest: ``${A:-${B:-x}/y}``).

A step is skipped when its fingerprint — the notebook's code, its parameters, the
``dotlib`` sources and committed weights, its ``inputs``, and the *content* of the assets
and files it uses — equals the one stored after its last successful run, and its outputs
exist unchanged: the stamp records the SHA-256 of every declared output, and an output
edited or overwritten since (a hand run writing into ``results/``) makes the step run again.

Content fingerprints (see :class:`ContentDigests`): a step uses the assets whose expanded path
appears in one of its expanded parameters (or lies inside one, or holds one), and every asset
that no step names in its parameters (those are looked up at fixed places, like the
Inception and VGG16 weights: so every step depends on them, the simple safe choice).
Any other parameter naming an existing file (a ``restorer_checkpoint``) counts too, except
the files steps write (declared outputs, or in a step's output folder). A file counts by
its SHA-256, cached by (resolved path, size, mtime, inode) in ``results/.stamps/digests.json``
so that multi-GB checkpoints are read once; a folder by its sorted relative file names and
sizes (an edit that keeps every name and size is not seen: reading 50 000 ImageNet images
per run would take minutes); a Hugging Face model by its weight files' content
(``dotlib.encoders.weights_fingerprint``); ``cuda`` by nothing. So replacing a checkpoint's
content at the same path re-runs the steps that use it.

A failing step is reported at the end and does not stop the others, except the later steps
whose ``inputs`` can match what it writes (its declared ``outputs``, its output notebook,
and its output folder when no other step writes there): those are not run ("skipped:
depends on failed step X"), nor the steps that depend on them, and the run exits non-zero.
Executed notebooks are written atomically. Up to ``jobs`` steps run at once; a step with
``inputs`` waits for every step before it, whose outputs it may read. Each step's
papermill log is ``runs/reproduce/<study>/<step>.log``.

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

__all__ = ["Asset", "ContentDigests", "Step", "Study", "Terminated", "check_parameters", "globs_overlap",
           "image_files", "load_study", "missing_assets", "notebook_parameters", "run_study"]

STAMP_DIR = Path("results/.stamps")
LOG_DIR = Path("runs/reproduce")
#: The content-digest cache of files, beside the stamps (see :class:`ContentDigests`).
DIGEST_CACHE = "digests.json"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<end>:-|\})")


def expand(text: str) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` from the environment (an empty value counts
    as unset). A default may itself hold variables: ``${A:-${B:-~/.cache}/torch}``."""
    expanded, _ = _expand_from(text, 0, nested=False, evaluate=True)
    return expanded


def _expand_from(text: str, index: int, nested: bool, evaluate: bool) -> tuple[str, int]:
    """Expand ``text`` from ``index`` up to its end, or (``nested``) up to the ``}`` closing a
    default, whose index is returned. ``evaluate=False`` only parses (a default not used)."""
    out: list[str] = []
    while index < len(text):
        if nested and text[index] == "}":
            return "".join(out), index
        match = _VARIABLE.match(text, index)
        if match is None:
            out.append(text[index])
            index += 1
            continue
        name, index = match["name"], match.end()
        value = os.environ.get(name) if evaluate else None
        if match["end"] == ":-":
            default, index = _expand_from(text, index, nested=True, evaluate=evaluate and not value)
            index += 1  # the closing brace
            out.append(value or default)
        elif value or not evaluate:
            out.append(value or "")
        else:
            raise KeyError(f"environment variable {name} is not set and has no default")
    if nested:
        raise ValueError(f"unclosed ${{...:-...}} in {text!r}")
    return "".join(out), index


def _expand_values(value):
    """``expand`` every string inside nested lists and mappings."""
    if isinstance(value, str):
        return expand(value)
    if isinstance(value, list):
        return [_expand_values(item) for item in value]
    if isinstance(value, dict):
        return {key: _expand_values(item) for key, item in value.items()}
    return value


def image_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` that ``dotlib.data.ImageFolder`` reads: recursive, its
    suffixes (any case), hidden files and folders skipped; sorted."""
    from .data import IMAGE_SUFFIXES

    folder = Path(folder)
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


@dataclass(frozen=True)
class Asset:
    """Something a study needs that cannot be downloaded at run time (see the module notes)."""

    kind: str  # "file", "folder", "huggingface" (a model id in the local HF cache, or a folder), "cuda"
    path: str
    what: str
    how: str
    optional: bool = False       # missing: a warning, and the notebooks skip what needs it
    min_files: int | None = None  # folders: image files needed at least (counted by image_files)

    def file_path(self) -> Path:
        """A file asset's path; ``<X>/<name>`` where ``X`` is itself a file called ``<name>`` means
        ``X`` (``${DOTLIB_INCEPTION_PATH:-/tmp}/inception-2015-12-05.pt``: the variable may name
        the file or its folder, as ``dotlib.metrics.inception.inception_file`` accepts)."""
        path = Path(self.path).expanduser()
        if not path.is_file() and path.parent.is_file() and path.parent.name == path.name:
            return path.parent
        return path

    def huggingface_folder(self) -> Path | None:
        """The local folder of a ``huggingface`` asset (its snapshot in the HF cache), None if absent."""
        folder = Path(self.path).expanduser()
        if folder.is_dir():
            return folder if (folder / "config.json").is_file() else None
        from huggingface_hub import try_to_load_from_cache

        try:
            found = try_to_load_from_cache(self.path, "config.json")
        except ValueError:  # not a valid repo id (a folder path that does not exist)
            return None
        return Path(found).parent if isinstance(found, str) else None

    def problem(self) -> str | None:
        """Why the asset cannot be used on this machine ("not found", too few images, ...); None if it can."""
        if self.kind == "file":
            return None if self.file_path().is_file() else "not found"
        if self.kind == "folder":
            folder = Path(self.path).expanduser()
            if not folder.is_dir():
                return "not found"
            if self.min_files is None:
                return None if any(folder.iterdir()) else "the folder is empty"
            count = len(image_files(folder))
            return None if count >= self.min_files else \
                f"holds {count} image file(s), at least {self.min_files} are needed"
        if self.kind == "huggingface":
            return None if self.huggingface_folder() is not None else "not found"
        if self.kind == "cuda":
            import torch

            if torch.cuda.is_available():
                return None
            return "torch.cuda.is_available() is False" + (
                f" (this torch {torch.__version__} is built without CUDA)" if torch.version.cuda is None else "")
        raise ValueError(f"unknown asset kind {self.kind!r}; use {', '.join(_ASSET_KINDS)}")

    def is_present(self) -> bool:
        return self.problem() is None

    def location(self) -> str:
        if self.kind == "cuda":
            return "a CUDA GPU on this machine"
        if self.kind == "huggingface" and not Path(self.path).expanduser().is_dir():
            from huggingface_hub.constants import HF_HUB_CACHE

            return f"Hugging Face id {self.path} (cache: {HF_HUB_CACHE})"
        if self.kind == "file":
            return str(self.file_path())
        return str(Path(self.path).expanduser())

    def describe(self) -> str:
        """Two or three indented lines for the missing-assets message: what, where (and why), how."""
        problem = self.problem()
        where = self.location() + (f" ({problem})" if problem and problem != "not found" else "")
        return f"  - {self.what}\n    where: {where}\n    how: {self.how}"


class ContentDigests:
    """Content digests of files, folders and Hugging Face models, for step fingerprints.

    Files: SHA-256 of the content, cached in ``cache_file`` (JSON) by resolved path, size,
    mtime (ns) and inode, so a multi-GB checkpoint is read again only when one of them
    changes; a file modified less than 2 s before it is read is not cached (its mtime could
    be shared by a second write within the file system's timestamp tick). Folders: SHA-256
    of the sorted relative names and sizes of their files (hidden ones skipped), not their
    content (a same-size edit keeping every name is not seen; reading every image of a
    50 000-image folder per run would take minutes). Hugging Face models: the weight files'
    content (:func:`dotlib.encoders.weights_fingerprint`, cached by the folder's listing).
    Every digest is also kept in memory for the run.
    """

    RACY_NS = 2_000_000_000

    def __init__(self, cache_file: str | Path | None = None):
        self.cache_file = None if cache_file is None else Path(cache_file)
        self._cache: dict[str, dict] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                loaded = json.loads(self.cache_file.read_text(encoding="utf-8"))
                self._cache = {key: value for key, value in loaded.items() if isinstance(value, dict)}
            except (ValueError, OSError, AttributeError):
                self._cache = {}  # a damaged cache is rebuilt
        self._changed = False
        self._memo: dict[tuple, str | None] = {}

    def _cached(self, key: str, signature: list, compute) -> str:
        entry = self._cache.get(key)
        if entry is not None and entry.get("signature") == signature:
            return entry["sha256"]
        digest = compute()
        self._cache[key] = {"signature": signature, "sha256": digest}
        self._changed = True
        return digest

    @staticmethod
    def _signature(path: Path) -> tuple[list, bool]:
        status = path.stat()
        racy = time.time_ns() - status.st_mtime_ns < ContentDigests.RACY_NS
        return [status.st_size, status.st_mtime_ns, status.st_ino], racy

    def file(self, path: str | Path) -> str:
        """SHA-256 (hex) of a file's content."""
        resolved = Path(path).expanduser().resolve()
        signature, racy = self._signature(resolved)
        memo = ("file", str(resolved), *signature)
        if memo not in self._memo:
            if racy:
                self._memo[memo] = _sha256_file(resolved)
            else:
                self._memo[memo] = self._cached(f"file:{resolved}", signature, lambda: _sha256_file(resolved))
        return self._memo[memo]

    def folder(self, path: str | Path) -> str:
        """SHA-256 (hex) of the sorted relative names and sizes of a folder's files (not their content)."""
        folder = Path(path).expanduser().resolve()
        memo = ("folder", str(folder))
        if memo not in self._memo:
            digest = hashlib.sha256()
            for name, size in _listing(folder):
                digest.update(f"{name}\0{size}\n".encode())
            self._memo[memo] = digest.hexdigest()
        return self._memo[memo]

    def huggingface(self, folder: str | Path) -> str:
        """The weight files' content digest of a diffusers model folder (every file's when it has
        no ``diffusion_pytorch_model*`` or ``*.bin`` weights)."""
        folder = Path(folder).expanduser().resolve()
        memo = ("huggingface", str(folder))
        if memo in self._memo:
            return self._memo[memo]
        signature, racy = [], False
        for name, _ in _listing(folder):
            file_signature, file_racy = self._signature((folder / name).resolve())
            signature.append([name, *file_signature])
            racy = racy or file_racy

        def compute() -> str:
            from .encoders import weights_fingerprint

            found = weights_fingerprint(folder)
            if found is not None:
                return found
            digest = hashlib.sha256()
            for name, _ in _listing(folder):
                digest.update(f"{name}\0{self.file(folder / name)}\n".encode())
            return digest.hexdigest()

        self._memo[memo] = compute() if racy else self._cached(f"huggingface:{folder}", signature, compute)
        return self._memo[memo]

    def asset(self, asset: Asset) -> str | None:
        """An asset's content digest (by its kind, as above), "missing", or None for ``cuda``."""
        memo = ("asset", asset)
        if memo not in self._memo:
            if asset.kind == "cuda":
                self._memo[memo] = None
            elif not asset.is_present():
                self._memo[memo] = "missing"
            elif asset.kind == "file":
                self._memo[memo] = self.file(asset.file_path())
            elif asset.kind == "folder":
                self._memo[memo] = self.folder(asset.path)
            else:
                self._memo[memo] = self.huggingface(asset.huggingface_folder())
        return self._memo[memo]

    def save(self) -> None:
        """Write the cache if a digest was added (atomically; nothing when there is no cache file)."""
        if self.cache_file is not None and self._changed:
            write_text(json.dumps(self._cache, indent=1, sort_keys=True) + "\n", self.cache_file)
            self._changed = False


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _listing(folder: Path) -> list[tuple[str, int]]:
    """(relative name, size) of every file under ``folder`` (links followed, hidden ones skipped), sorted."""
    found = []
    for root, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                found.append((path.relative_to(folder).as_posix(), path.stat().st_size))
            except OSError:  # a dangling link
                continue
    return sorted(found)


@dataclass
class Step:
    """One papermill run of a notebook with parameters."""

    name: str
    notebook: Path
    output: Path
    parameters: dict = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def fingerprint(self, code_digest: str, contents: dict[str, str] | None = None) -> str:
        """Hash of ``code_digest``, the notebook's code, the parameters, the ``inputs``' content and
        ``contents`` (label -> content digest of the assets and files the step uses, see
        :func:`step_contents`)."""
        digest = hashlib.sha256()
        digest.update(code_digest.encode())
        digest.update(_notebook_code(self.notebook).encode())
        digest.update(json.dumps(self.parameters, sort_keys=True, default=str).encode())
        for path in _expand_globs(self.inputs):
            digest.update(str(path).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        if contents:
            digest.update(json.dumps(contents, sort_keys=True).encode())
        return digest.hexdigest()

    def parameter_strings(self) -> list[str]:
        """Every string among the (expanded) parameter values, nested lists and mappings included."""
        return _strings(self.parameters)

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


def _strings(value) -> list[str]:
    """The strings inside ``value`` (nested lists and mapping values), in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


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
_ASSET_KEYS = {"kind": str, "path": str, "what": str, "how": str, "optional": bool, "min_files": int}
_ASSET_REQUIRED = ("kind", "what", "how")
_ASSET_KINDS = ("file", "folder", "huggingface", "cuda")
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a mapping", bool: "true or false"}


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
        wrong = not isinstance(value, bool) if kind is bool else (not isinstance(value, kind)
                                                                  or isinstance(value, bool))
        if value is not None and wrong:
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
    assets = [_load_asset(f"{path}: asset {index + 1}", entry)
              for index, entry in enumerate(spec.get("assets") or [])]
    jobs = spec.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"{path}: jobs must be a positive integer, got {jobs!r}")
    return Study(name=spec.get("name", path.stem), steps=steps, assets=assets, jobs=jobs)


def _load_asset(where: str, entry: object) -> Asset:
    _check_keys(where, entry, _ASSET_KEYS, _ASSET_REQUIRED)
    kind = entry["kind"]
    if kind not in _ASSET_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(_ASSET_KINDS)}, got {kind!r}")
    if kind == "cuda" and "path" in entry:
        raise ValueError(f"{where}: a cuda asset has no 'path' (it is checked with torch.cuda.is_available())")
    if kind != "cuda" and "path" not in entry:
        raise ValueError(f"{where} lacks 'path' (every {kind} asset needs one)")
    min_files = entry.get("min_files")
    if min_files is not None and (kind != "folder" or min_files < 1):
        raise ValueError(f"{where}: 'min_files' must be a positive integer on a folder asset, got {min_files!r} "
                         f"on a {kind} asset")
    return Asset(kind=kind, path=expand(str(entry.get("path", ""))), what=entry["what"], how=entry["how"],
                 optional=bool(entry.get("optional", False)), min_files=min_files)


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
    """The study's assets that are not on this machine (or unusable: a folder with too few
    images), required and optional ones."""
    return [asset for asset in study.assets if not asset.is_present()]


def missing_assets_message(study: Study, missing: list[Asset]) -> str | None:
    """The message that stops the study when a required asset is missing (None when none is):
    every missing asset, required ones first, each with what it is for, where and how."""
    required = [asset for asset in missing if not asset.optional]
    if not required:
        return None
    lines = [f"study {study.name!r} cannot start: {len(required)} asset(s) missing (no step was run)"]
    lines += [asset.describe() for asset in required]
    optional = [asset for asset in missing if asset.optional]
    if optional:
        lines.append(f"also missing, optional ({len(optional)}; the study would run without them):")
        lines += [asset.describe() for asset in optional]
    return "\n".join(lines)


def _normal(path: str) -> str:
    return os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(path)))


def _contains(outer: str, inner: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies inside it (both normalised)."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _writes_there(study: Study, path: str) -> bool:
    """Whether ``path`` (normalised) is written by a step: matches declared outputs, or lies in an output folder."""
    for step in study.steps.values():
        folder = _normal(str(step.output.parent))
        if folder != os.getcwd() and _contains(folder, path):
            return True
        if any(fnmatch.fnmatchcase(path, _normal(pattern)) for pattern in step.outputs + [str(step.output)]):
            return True
    return False


def _uses(step: Step, asset: Asset) -> bool:
    """Whether one of ``step``'s parameters names ``asset``: holds its path (``folder:<path>`` too),
    or names a folder holding it, or a path inside it."""
    if asset.kind == "cuda" or not asset.path:
        return False
    values = [value for value in step.parameter_strings() if value]
    if any(asset.path in value for value in values):
        return True
    target = _normal(asset.path)
    return any(_contains(_normal(value), target) or _contains(target, _normal(value)) for value in values)


def step_contents(study: Study, step: Step, digests: ContentDigests) -> dict[str, str]:
    """Label -> content digest of the assets and files ``step`` uses (see the module notes).

    The step's assets: those one of its parameters names, and those no step names (read from
    fixed places, like metric weights). Other parameters naming an existing file that no step
    writes count too (``parameter <name>`` labels, e.g. a ``restorer_checkpoint``).
    """
    named = {asset for asset in study.assets if any(_uses(other, asset) for other in study.steps.values())}
    contents: dict[str, str] = {}
    for asset in study.assets:
        if asset in named and not _uses(step, asset):
            continue
        digest = digests.asset(asset)
        if digest is not None:
            contents[f"asset {asset.kind} {asset.path}"] = digest
    covered = {_normal(asset.path) for asset in study.assets if asset.kind != "cuda"}
    for name, value in sorted(step.parameters.items()):
        for index, text in enumerate(_strings(value)):
            if not text or "\n" in text or len(text) > 4096:
                continue
            path = _normal(text)
            if path in covered or not Path(path).is_file() or _writes_there(study, path):
                continue
            contents[f"parameter {name}{f'[{index}]' if index else ''} {text}"] = digests.file(path)
    return contents


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
    return _parts_overlap(_normal(a).split(os.sep), _normal(b).split(os.sep))


def _written_by(study: Study, step: Step) -> list[str]:
    """Glob patterns of what ``step`` writes: its declared outputs, its output notebook, and its
    output folder when no other step's notebook is written in it (or below it)."""
    patterns = list(step.outputs) + [str(step.output)]
    folder = _normal(str(step.output.parent))
    shared = folder == os.getcwd() or any(
        _contains(folder, _normal(str(other.output.parent)))
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


def _stamp_path(study: Study, step: Step, stamp_dir: Path = STAMP_DIR) -> Path:
    return Path(stamp_dir) / study.name / f"{step.name}.json"


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
              jobs: int | None = None, stamp_dir: str | Path | None = None) -> list[dict]:
    """Run (or skip) every selected step, up to ``jobs`` (default ``study.jobs``) at once.

    Returns one summary record per step, in the study's order: status "ran", "skipped"
    (unchanged), "failed" (with ``error``) or "blocked" (not run: a step whose outputs it
    reads failed; ``error`` says "skipped: depends on failed step X"). Stamps and the digest
    cache go to ``stamp_dir`` (default :data:`STAMP_DIR`).
    """
    missing = missing_assets(study)
    message = missing_assets_message(study, missing)
    if message:
        raise SystemExit(message)
    if missing:
        print(f"warning: {len(missing)} optional asset(s) missing; the study runs without them, and the "
              f"notebooks skip (and say) what needs them:", flush=True)
        print("\n".join(asset.describe() for asset in missing), flush=True)
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
    stamp_dir = STAMP_DIR if stamp_dir is None else Path(stamp_dir)
    digests = ContentDigests(stamp_dir / DIGEST_CACHE)
    records: dict[str, dict] = {}
    children = _Children()

    def run(step: Step, header: str, fingerprint: str, contents: dict[str, str]) -> None:
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
        stamp = {"fingerprint": fingerprint, "seconds": round(seconds, 1), "outputs": step.output_hashes()}
        if contents:
            stamp["contents"] = contents
        write_text(json.dumps(stamp, indent=1) + "\n", _stamp_path(study, step, stamp_dir))
        print(f"{header}: done in {seconds:.0f} s", flush=True)
        records[step.name] = {"step": step.name, "status": "ran", "seconds": seconds}

    running: set[Future] = set()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                for index, step in enumerate(selected, 1):
                    header = f"[{index}/{len(selected)}] {step.name}"
                    if step.inputs:  # its inputs may be the outputs of earlier steps
                        running = wait(running).not_done
                        failed = {record["step"]: record.get("root", record["step"]) for record in records.values()
                                  if record["status"] in ("failed", "blocked")}
                        upstream = failed_dependency(study, step, failed)
                        if upstream is not None:
                            root, through = upstream
                            reason = f"skipped: depends on failed step {root}" + (
                                "" if through == root else f" (through {through}, not run)")
                            print(f"{header}: {reason}", flush=True)
                            records[step.name] = {"step": step.name, "status": "blocked", "seconds": 0.0,
                                                  "error": reason, "root": root}
                            continue
                    while len(running) >= jobs:
                        running = wait(running, return_when=FIRST_COMPLETED).not_done
                    contents = step_contents(study, step, digests)
                    fingerprint = step.fingerprint(digest, contents)
                    previous = _stamp_path(study, step, stamp_dir)
                    previous = json.loads(previous.read_text()) if previous.is_file() else {}
                    changed = step.changed_outputs(previous.get("outputs", {}))
                    if changed and previous.get("fingerprint") == fingerprint:
                        print(f"{header}: outputs changed since the step ran ({', '.join(changed[:3])}"
                              f"{', ...' if len(changed) > 3 else ''}); running it again", flush=True)
                    if not force and not changed and previous.get("fingerprint") == fingerprint \
                            and step.outputs_exist():
                        print(f"{header}: unchanged, skipped", flush=True)
                        records[step.name] = {"step": step.name, "status": "skipped", "seconds": 0.0}
                        continue
                    altered = sorted(label for label, value in previous.get("contents", {}).items()
                                     if contents.get(label, value) != value)
                    if altered and previous.get("fingerprint") != fingerprint:
                        print(f"{header}: content changed since the step ran ({', '.join(altered[:3])}"
                              f"{', ...' if len(altered) > 3 else ''}); running it again", flush=True)
                    running.add(pool.submit(run, step, header, fingerprint, contents))
                wait(running)
            except (KeyboardInterrupt, Terminated):
                children.stop_all()
                raise
    finally:
        digests.save()
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


if __name__ == "__main__":
    sys.exit(main())
