"""A git clean filter for ``notebooks/*.ipynb``: outputs, execution counts and volatile metadata out.

Running a notebook in JupyterLab writes its outputs (a megabyte for notebook 03) and the
kernel's ``language_info`` into the file; under this filter git sees only the source cells,
so ``git status`` stays clean after a session and no output is committed by accident.
``make setup`` registers it (``git config filter.nbstrip.clean``); ``.gitattributes`` applies it.
Executed notebooks under ``results/`` are not filtered: their outputs are results.

:func:`pre_save_hook` does the same when JupyterLab (``make lab``) saves a notebook under
``notebooks/``: the file on disk keeps its committed bytes, so ``git status`` stays clean too
(git would otherwise see a file of another size as modified, although ``git diff`` is empty).
Outputs stay in the open session; save a copy elsewhere (``runs/``) to keep them.

Reads a notebook on stdin, writes the stripped notebook on stdout (the same bytes for a
notebook that is already stripped), in nbformat's layout: one-space indent, sorted keys.
"""

from __future__ import annotations

import json
import sys

#: Notebook metadata kept; ``language_info`` is cut to the language's name (a kernel start fills
#: in its version), and everything else, e.g. widget state, is dropped.
KEPT_METADATA = ("kernelspec",)
#: Cell metadata kept (e.g. papermill's ``parameters`` tag).
KEPT_CELL_METADATA = ("tags",)


def strip(notebook: dict) -> dict:
    """The notebook without outputs, execution counts and volatile metadata."""
    metadata = notebook.get("metadata", {})
    notebook["metadata"] = {key: metadata[key] for key in KEPT_METADATA if key in metadata}
    notebook["metadata"]["language_info"] = {"name": metadata.get("language_info", {}).get("name", "python")}
    for cell in notebook.get("cells", []):
        cell["metadata"] = {key: cell["metadata"][key] for key in KEPT_CELL_METADATA
                            if cell.get("metadata", {}).get(key)}   # an empty tag list is dropped too
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return notebook


def pre_save_hook(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """Jupyter's ``FileContentsManager.pre_save_hook``: strip a notebook saved under ``notebooks/``."""
    if model.get("type") == "notebook" and path.replace("\\", "/").lstrip("/").startswith("notebooks/"):
        strip(model["content"])


def main() -> int:
    text = sys.stdin.read()
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError:
        sys.stdout.write(text)   # not a notebook git can parse: pass it through untouched
        return 0
    sys.stdout.write(json.dumps(strip(notebook), indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
