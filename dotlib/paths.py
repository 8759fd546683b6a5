"""Where things live: the project root, the committed weights, the results folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DIR", "WEIGHTS_DIR", "project_root"]

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``.

    Notebooks call it so that their relative paths (``results/...``) mean the same in
    JupyterLab (cwd ``notebooks/``) and under papermill (cwd of the caller).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "dotlib").is_dir():
            return folder
    raise FileNotFoundError(
        f"no dotlib project (pyproject.toml beside dotlib/) at or above {here}; "
        "run the notebook from inside the repository"
    )
