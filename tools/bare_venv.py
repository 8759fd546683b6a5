"""A venv that holds only what a bare GPU machine has, for rehearsing ``tools/gpu_check.sh`` here.

The GPU machine has torch (with CUDA), torchvision's absence aside, and the packages of
``tools/wheelhouse.py``'s ``BARE``; nothing of the project's. This makes ``DIR`` a venv whose
site-packages links exactly those distributions, and everything they require, from this
project's ``.venv`` (installing torch again would copy 5 GB); diffusers, spandrel, lpips,
clean-fid, papermill and the rest must then come from the wheelhouse.

    .venv/bin/python tools/bare_venv.py .bare && PYTHON=.bare/bin/python tools/gpu_check.sh --rehearse
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheelhouse import BARE, closure  # noqa: E402


def linked_entries(names: dict[str, str]) -> set[str]:
    """The top-level entries of site-packages (packages, modules, .dist-info) of the distributions ``names``."""
    entries = set()
    for name in names:
        for file in metadata.distribution(name).files or ():
            top = Path(file).parts[0]
            if top not in ("..", "__pycache__") and not top.endswith(".pth"):
                entries.add(top)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the venv to (re)create")
    folder = Path(parser.parse_args(argv).folder)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    source = Path(sysconfig.get_paths()["purelib"])
    target = next((folder / "lib").glob("python3*/site-packages"))
    entries = linked_entries(closure(BARE + ("torchvision",), strict=False))
    for entry in sorted(entries):
        if (source / entry).exists() and not (target / entry).exists():
            (target / entry).symlink_to(source / entry)
    print(f"{folder}: a venv with {len(entries)} site-packages entries linked from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
