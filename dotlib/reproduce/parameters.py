"""A notebook's parameters: the names its ``parameters`` cell declares, their types, and the checks.

The cell tagged ``parameters`` declares each parameter with its default, optionally annotated::

    from typing import Optional
    n_fit = 16                   # an int: 16.0, "16" or true are refused
    alphas = [0.0, 0.5]          # a list of floats (its first element's type; ints are floats too)
    eps: Optional[float] = None  # a None default needs an annotation to be checked

Optional parameters are annotated ``Optional[...]``, not ``... | None``: papermill's own reading of
the cell (``papermill --help-notebook``, and its "Passed unknown parameter" warning) does not parse
a ``|`` in an annotation, so it would list such a parameter as unknown although the notebook reads it.
A declared type is the annotation where there is one, else the default's type (``bool``,
``int``, ``float``, ``str``, ``list[...]``); a None default without an annotation takes any
value. No string is turned into a number: a study that gives ``"64"`` where a list of
numbers is expected, ``true`` where a number is, or YAML's ``1e-5`` (which YAML 1.1 reads
as a string, for want of a decimal point) is refused with the parameter's name and the fix.

:func:`check_parameters` checks what a study gives a notebook before anything runs;
:func:`check_kernel_parameters`, called by each notebook after papermill's injected cell,
refuses names the notebook does not declare (papermill itself only warns) and wrong types.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from pathlib import Path

from ..validate import of_type

__all__ = ["check_kernel_parameters", "check_parameters", "notebook_parameters", "parameter_problems",
           "parameter_types"]

_NO_LITERAL = object()  # a default that is not a Python literal (an expression)

#: A string YAML 1.1 leaves unparsed although it reads as a number (``1e-5``: no decimal point).
_NUMBER_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _assignments(source: str, where: str) -> list[tuple[str, ast.expr | None, ast.expr | None]]:
    """``(name, value node, annotation node)`` of each assignment of a parameters cell's ``source``."""
    lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as error:
        raise ValueError(f"{where}: its parameters cell is not valid Python ({error})") from None
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value, annotation = statement.targets, statement.value, None
        elif isinstance(statement, ast.AnnAssign):
            targets, value, annotation = [statement.target], statement.value, statement.annotation
        else:
            continue
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    found.append((node.id, value if isinstance(target, ast.Name) else None, annotation))
    return found


def _statements(notebook: str | Path):
    """The assignments of the cell(s) tagged ``parameters`` (:func:`_assignments`); None when no
    cell carries the tag."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [cell for cell in cells if cell.get("cell_type") == "code"
              and "parameters" in (cell.get("metadata", {}).get("tags") or [])]
    if not tagged:
        return None
    sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in tagged]
    return [found for source in sources for found in _assignments(source, str(notebook))]


def notebook_parameters(notebook: str | Path) -> dict[str, object] | None:
    """The names assigned in ``notebook``'s cell(s) tagged ``parameters``, with their defaults.

    A default that is not a literal is given as an opaque placeholder. Returns None when
    no cell carries the tag (papermill would then inject parameters nobody reads).
    """
    found = _statements(notebook)
    return None if found is None else {name: _literal(value) for name, value, _ in found}


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else _NO_LITERAL
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_LITERAL


def _type_of(value: object) -> str:
    """The declared type of a default: ``bool``, ``int``, ``float``, ``str``, ``list[...]`` or ``any``."""
    if isinstance(value, (bool, int, float, str)):
        return type(value).__name__
    if isinstance(value, list):
        return f"list[{_type_of(value[0]) if value else 'any'}]"
    return "any"


def _types(found: list) -> dict[str, str]:
    return {name: ast.unparse(annotation) if annotation is not None else _type_of(_literal(value))
            for name, value, annotation in found}


def parameter_types(notebook: str | Path) -> dict[str, str] | None:
    """``{name: declared type}`` of ``notebook``'s parameters (see the module notes); None without the tag."""
    found = _statements(notebook)
    return None if found is None else _types(found)


def _fix(value: object, kind: str) -> str:
    """How to write ``value`` as ``kind``, for the message."""
    text = value.strip() if isinstance(value, str) else ""
    if _NUMBER_TEXT.match(text) and "e" in text.lower() and "." not in text and ("float" in kind or "int" in kind):
        return (f": YAML reads {value} as a string (a number in exponent form needs a decimal point), "
                f"so write {float(value)!r}")
    if isinstance(value, str):
        return ": write it without quotes, in the declared type (an expanded ${VARIABLE} is always a string)"
    if isinstance(value, bool):
        return ": true/false is a boolean; write the number itself"
    return ""


def parameter_problems(notebook: Path, parameters: dict) -> list[str]:
    """What is wrong with giving ``parameters`` to ``notebook`` (see :func:`check_parameters`), one
    line per problem; empty when nothing is."""
    declared = parameter_types(notebook)
    if declared is None:
        return [f"notebook {notebook} has no cell tagged 'parameters', so it reads none of "
                f"{', '.join(map(repr, parameters))}"] if parameters else []
    return _problems(notebook, declared, parameters)


def _problems(notebook: str | Path, declared: dict[str, str], parameters: dict) -> list[str]:
    known = ", ".join(sorted(declared)) or "none"
    problems = []
    for name, value in parameters.items():
        if name not in declared:
            close = difflib.get_close_matches(str(name), list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"parameter {name!r}{hint} is not declared by notebook {notebook}; "
                            f"its parameters are: {known}")
        elif not of_type(value, declared[name]):
            problems.append(f"parameter {name!r} of notebook {notebook} must be {declared[name]}, got "
                            f"{type(value).__name__} {value!r}{_fix(value, declared[name])}")
    return problems


def check_parameters(notebook: str | Path, parameters: dict) -> None:
    """Raise ``ValueError`` if ``parameters`` name one that ``notebook`` does not declare (in its cell
    tagged ``parameters``), or give one a value that is not of its declared type."""
    problems = parameter_problems(Path(notebook), dict(parameters or {}))
    if problems:
        raise ValueError("; ".join(problems))


def check_kernel_parameters(namespace: dict, notebook: str) -> None:
    """In a running notebook, after papermill's injected cell: ``ValueError`` (one line) naming any
    injected parameter that the notebook's parameters cell does not declare, or of the wrong type.

    Both are read from the kernel's input history (``In``): papermill's injected cell begins with
    ``# Parameters`` and follows the parameters cell. A hand run has no injected cell.
    """
    history = list(namespace.get("In", []))
    injected = [index for index, source in enumerate(history) if source.startswith("# Parameters")]
    if not injected or injected[0] == 0:
        return
    declared = _types(_assignments(history[injected[0] - 1], notebook))
    assigned = {name for index in injected for name, _, _ in _assignments(history[index], notebook)}
    problems = _problems(notebook, declared, {name: namespace[name] for name in assigned if name in namespace})
    if problems:
        raise ValueError("; ".join(problems))
