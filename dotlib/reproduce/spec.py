"""The study file: :class:`Study` and :class:`Step`, loading and checking the YAML (keys, types,
the parameters each notebook declares) and ``${NAME:-default}`` expansion from the environment."""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .assets import ASSET_KINDS, Asset
from .digests import sha256_file

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<end>:-|\})")


# ------------------------------------------------------------ environment expansion


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


# ------------------------------------------------------------ steps and studies


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
        for path in expand_globs(self.inputs):
            digest.update(str(path).encode())
            digest.update(bytes.fromhex(sha256_file(path)))
        if contents:
            digest.update(json.dumps(contents, sort_keys=True).encode())
        return digest.hexdigest()

    def parameter_strings(self) -> list[str]:
        """Every string among the (expanded) parameter values, nested lists and mappings included."""
        return strings_in(self.parameters)

    def outputs_exist(self) -> bool:
        return Path(self.output).is_file() and all(expand_globs([p]) for p in self.outputs)

    def output_hashes(self) -> dict[str, str]:
        """SHA-256 of every declared output file (globs expanded), as the stamp records them."""
        return {str(path): sha256_file(path) for path in expand_globs(self.outputs)}

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


def strings_in(value) -> list[str]:
    """The strings inside ``value`` (nested lists and mapping values), in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in strings_in(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    return []


def expand_globs(patterns: list[str]) -> list[Path]:
    """The files matching any of ``patterns`` (``**`` any depth), sorted."""
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


# ------------------------------------------------------------ the YAML schema


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
        _check_confined(f"{path}: step {name!r}", steps[name])
    assets = [_load_asset(f"{path}: asset {index + 1}", entry)
              for index, entry in enumerate(spec.get("assets") or [])]
    jobs = spec.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"{path}: jobs must be a positive integer, got {jobs!r}")
    return Study(name=spec.get("name", path.stem), steps=steps, assets=assets, jobs=jobs)


def _check_confined(where: str, step: Step) -> None:
    """A step writes inside the folder the study runs from (the repository, under make): its
    ``output``, ``outputs`` and ``*_dir`` parameters."""
    root = Path.cwd().resolve()
    written = [("output", str(step.output))] + [("outputs", pattern) for pattern in step.outputs]
    written += [(key, value) for key, value in step.parameters.items() if key.endswith("_dir") and isinstance(value, str)]
    for key, value in written:
        target = (root / value).resolve()
        if target != root and root not in target.parents:
            raise ValueError(f"{where}: {key} {value!r} lies outside {root}, the folder the study runs from; a "
                             f"study writes under it (results/ or runs/ of the repository)")


def _load_asset(where: str, entry: object) -> Asset:
    _check_keys(where, entry, _ASSET_KEYS, _ASSET_REQUIRED)
    kind = entry["kind"]
    if kind not in ASSET_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(ASSET_KINDS)}, got {kind!r}")
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


# ------------------------------------------------------------ notebook parameters


def preset_parameters(study: str, notebook: str, **match) -> dict:
    """The parameters of the one step of ``studies/<study>.yaml`` that runs ``notebook`` (a file
    name) with every parameter of ``match``, without its output folders (``*_dir``): a hand run
    with them computes what that step committed, and writes under ``runs/``.

    ``ValueError`` naming the candidates when no step or several match.
    """
    from ..paths import project_root

    loaded = load_study(project_root() / "studies" / f"{study}.yaml")
    steps = [step for step in loaded.steps.values() if step.notebook.name == notebook
             and all(step.parameters.get(key) == value for key, value in match.items())]
    if len(steps) != 1:
        described = ", ".join(f"{key}={value!r}" for key, value in match.items())
        candidates = [step.name for step in loaded.steps.values() if step.notebook.name == notebook]
        raise ValueError(f"study {study!r} has {len(steps)} steps running {notebook} with {described}; "
                         f"its steps for that notebook: {', '.join(candidates) or 'none'}")
    return {key: value for key, value in steps[0].parameters.items() if not key.endswith("_dir")}
