"""Write the wheelhouse ``.whl/``: the packages a bare GPU machine lacks, for its Python.

A lent GPU machine has python3 with torch + CUDA, numpy, scipy, pandas, matplotlib, seaborn,
scikit-image, safetensors, huggingface-hub, accelerate and torchmetrics (:data:`BARE`), no
network, and takes at most 64 MiB of files along with the repository. The GPU check
(``tools/gpu_check.sh``) needs more: diffusers, spandrel, lpips, clean-fid, papermill and the
Jupyter kernel (:data:`NEEDED`). This script takes the closure of :data:`NEEDED`'s
requirements in this project's environment, removes the closure of :data:`BARE` (present on
the machine), and downloads each remaining distribution at the version installed here, as a
wheel for ``--python-version`` (manylinux x86_64; pure-Python wheels fit any). Pure-Python
projects that publish no wheel are built here. ``.whl/wheels.txt`` lists what was taken.

    make wheelhouse                   # Python 3.12, the GPU machine's
    make wheelhouse PY_VERSION=3.11   # this machine's Python, for `tools/gpu_check.sh --rehearse`

Why not ``pip download -r requirements.txt``: with dependencies, pip would fetch torch (several
GB); without, it would miss the dependencies. The closure is read from the installed metadata.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: What the bare GPU machine has (and what a rehearsal's bare venv holds, torchvision included).
BARE = ("torch", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "scikit-image", "safetensors",
        "huggingface-hub", "accelerate", "torchmetrics")

#: What the GPU check imports beyond :data:`BARE` (the dry run executes notebooks: papermill, ipykernel;
#: scikit-learn ships two photos of the embedded pool, which the stand-in images are cut from).
NEEDED = ("diffusers", "spandrel", "spandrel-extra-arches", "lpips", "clean-fid", "papermill", "nbformat",
          "ipykernel", "ipywidgets", "pyyaml", "tqdm", "pillow", "scikit-learn")

#: torchvision for the GPU machine's torch (2.11): its release pair; the rehearsal's venv has its own.
TORCHVISION_FOR = {"3.12": "torchvision==0.26.0"}

#: At most this much travels with a device call beside other files.
LIMIT_MIB = 60

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def closure(names: tuple[str, ...], strict: bool = True) -> dict[str, str]:
    """``{canonical name: installed version}`` of ``names`` and everything they require (no extras);
    a distribution not installed here stops the script, or is skipped when not ``strict``."""
    seen: dict[str, str] = {}
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if not strict:
                continue
            raise SystemExit(f"wheelhouse: {name} is not installed here; run `make setup` first") from None
        seen[name] = distribution.version
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def wanted(python: str) -> list[str]:
    """The pinned distributions the wheelhouse holds for ``python``."""
    present = closure(BARE + ("torchvision",), strict=False)   # accelerate, torchmetrics: not used here
    needed = {name: version for name, version in closure(NEEDED).items() if name not in present}
    pins = [f"{name}=={version}" for name, version in sorted(needed.items())]
    return pins + ([TORCHVISION_FOR[python]] if python in TORCHVISION_FOR else [])


def download(pin: str, python: str, folder: Path) -> None:
    """The wheel of ``pin`` for ``python`` into ``folder``; a pure-Python wheel built here if none is published."""
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--isolated", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python, "--implementation", "cp", *platforms, "-d", str(folder), pin]
    if subprocess.run(command, capture_output=True, text=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as scratch:
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--isolated", "--quiet", "--no-deps",
                                "-w", scratch, pin], capture_output=True, text=True)
        wheels = list(Path(scratch).glob("*.whl"))
        if built.returncode != 0 or len(wheels) != 1 or not wheels[0].name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"wheelhouse: no wheel of {pin} for Python {python}, and none could be built "
                             f"here as pure Python:\n{built.stderr[-2000:]}")
        shutil.move(str(wheels[0]), folder / wheels[0].name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.12", help="the target Python, e.g. 3.12 (default) or 3.11")
    parser.add_argument("--dest", default=".whl", help="folder to write (replaced)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        raise SystemExit(f"wheelhouse: --python-version must read like 3.12, got {args.python_version!r}")
    pins = wanted(args.python_version)
    dest = Path(args.dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for number, pin in enumerate(pins, 1):
        print(f"[{number}/{len(pins)}] {pin}", flush=True)
        download(pin, args.python_version, dest)
    total = sum(path.stat().st_size for path in dest.glob("*.whl")) / 2 ** 20
    (dest / "wheels.txt").write_text(f"# {len(pins)} wheels for Python {args.python_version}, {total:.1f} MiB, "
                                     f"written by tools/wheelhouse.py\n" + "\n".join(pins) + "\n")
    print(f"wheelhouse: {len(pins)} wheels for Python {args.python_version}, {total:.1f} MiB in {dest}/")
    if total > LIMIT_MIB:
        print(f"wheelhouse: {total:.1f} MiB is over the {LIMIT_MIB} MiB a device call may carry", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
