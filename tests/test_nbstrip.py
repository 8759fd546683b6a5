"""Notebooks stay clean in git: the nbstrip clean filter drops outputs and volatile metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILTER = [sys.executable, str(ROOT / "tools" / "nbstrip.py")]


def _run(text: str) -> str:
    return subprocess.run(FILTER, input=text, capture_output=True, text=True, check=True).stdout


def test_an_executed_notebook_is_stripped_to_its_sources_and_stripping_is_idempotent() -> None:
    source = (ROOT / "notebooks" / "01_toy_gaussian.ipynb").read_text(encoding="utf-8")
    executed = json.loads(source)
    executed["metadata"]["language_info"] = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python"}
    executed["metadata"]["widgets"] = {"state": {}}
    code = next(cell for cell in executed["cells"] if cell["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stderr", "text": ["IProgress not found\n"]}]
    code["execution_count"] = 7
    code["metadata"]["execution"] = {"iopub.status.busy": "2026-12-03T02:00:00Z"}
    for cell in executed["cells"]:
        cell["metadata"].setdefault("tags", [])      # JupyterLab adds empty tag lists
    stripped = _run(json.dumps(executed, indent=2))
    assert stripped == source                      # back to the committed bytes
    assert _run(stripped) == stripped
    assert _run("not json") == "not json"


def test_every_committed_notebook_is_already_stripped_and_git_is_told_to_filter() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert _run(text) == text, path.name
    assert "notebooks/*.ipynb filter=nbstrip" in (ROOT / ".gitattributes").read_text()
    assert "filter.nbstrip.clean" in (ROOT / "Makefile").read_text()
