"""The paper study's dry run: ``studies/paper.yaml`` on stand-in assets, on CPU, at tiny sizes.

``make paper-dryrun [NPROC=2]`` (``python -m dotlib.dryrun [--nproc N]``) builds every
asset of the paper study as a random stand-in in the published file format
(:func:`dotlib.standins.build_standins`: a diffusers ``AutoencoderKL`` folder, spandrel
checkpoints of SwinIR, Swin2SR, Restormer and ESRGAN, clean-fid's torchscript Inception,
torchvision's VGG16 for LPIPS, an ImageNet-val style folder) plus precomputed "DDRM"
outputs for the folder restorer, DDRM's three folders and Swin2SR's paired inputs (the
val stand-ins stand in for DIV2K), points the study's environment variables at them, and
runs the very steps of ``studies/paper.yaml`` through :func:`dotlib.reproduce.run_study`
with only these changes: images of :data:`DRY_PARAMETERS` size and count, CPU, ``nproc``
processes, and every ``results/paper`` path moved to ``runs/paper_dryrun`` (which then
has the layout of ``results/``: ``tasks/*/metrics.csv``, ``tables/``, ``figures/``).
The numbers mean nothing (random weights); what is checked is that the whole published
path runs and fills every metric column.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from .cli import save_png
from .metrics.registry import METRICS
from .paths import project_root

__all__ = ["DRY_PARAMETERS", "DRY_ROOT", "dry_study", "main", "missing_columns", "write_ddrm_standins",
           "write_folder_outputs", "write_paired_inputs"]

DRY_ROOT = Path("runs/paper_dryrun")
PAPER_ROOT = "results/paper"

#: Task-step parameters the dry run overrides (where the step has them).
DRY_PARAMETERS = {"size": 64, "n_fit": 8, "max_eval": 20, "alpha_step": 0.5, "secondary_alpha_step": 1.0,
                  "device": "cpu", "batch_size": 4, "num_workers": 0, "kid_capacity": 64, "kid_subsets": 20,
                  "kid_subset_size": 10, "is_splits": 2}

#: Spreads the dry run's settings make non-zero (a constant IS or KID would leave them 0).
SPREAD_COLUMNS = ("is_sd", "kid_sd")

#: Metric columns every task's metrics.csv must fill on the dry run (stand-ins for every weight).
REQUIRED_COLUMNS = tuple(entry.key for entry in METRICS if entry.key != "latent_w2")


def _moved(value):
    if isinstance(value, str):
        return value.replace(PAPER_ROOT, str(DRY_ROOT))
    if isinstance(value, list):
        return [_moved(item) for item in value]
    if isinstance(value, dict):
        return {key: _moved(item) for key, item in value.items()}
    return value


def dry_study(study, nproc: int = 1, device: str = "cpu"):
    """``study`` (the paper's) with tiny sizes, ``device``, ``nproc`` processes and outputs under ``runs/paper_dryrun``."""
    steps = {}
    for name, step in study.steps.items():
        parameters = _moved(dict(step.parameters))
        if "restorer" in parameters:   # a task step
            parameters.update(DRY_PARAMETERS)
            parameters.update(nproc=nproc, device=device)
        steps[name] = replace(step, output=Path(_moved(str(step.output))), parameters=parameters,
                              inputs=_moved(list(step.inputs)), outputs=_moved(list(step.outputs)))
    least = 2 * DRY_PARAMETERS["n_fit"] + 2   # fitted + disjoint source + 2 evaluated, at the dry-run size
    assets = [replace(asset, min_files=least) if asset.min_files else asset for asset in study.assets
              if asset.kind != "cuda" or device.startswith("cuda")]
    jobs = max(1, (os.cpu_count() or 1) // nproc)   # one thread per process: fill the cores
    return replace(study, name=f"{study.name}_dryrun", steps=steps, assets=assets, jobs=jobs)


def write_folder_outputs(images: Path, outputs: Path, task: str, size: int, seed: int = 0) -> int:
    """Stand-in precomputed restorations: for every image of ``images``, a bicubic x4 upsampling of
    its degraded ``size``² crop, saved as PNG under ``outputs`` with the same stem. Returns the count."""
    from .data import ImageFolder
    from .degradations import degrade
    from .restorers import bicubic_upsample

    folder = ImageFolder(images, resize=size, crop=size)
    outputs.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(folder.files):
        y = degrade(task, folder[index][None], seed=seed + index)
        save_png(bicubic_upsample(y, size // y.shape[-1])[0], outputs / f"{path.stem}.png")
    return len(folder.files)


def write_ddrm_standins(images: Path, root: Path, size: int, seed: int = 0) -> int:
    """Stand-ins of DDRM's saved results under ``root``: ``original/`` (each image of ``images`` as
    the authors' protocol prepares it at ``size``²), ``degraded/`` (its ×4 noisy input, clipped to
    8 bits) and ``ddrm/`` (that input upsampled bicubically), one PNG per image, same stem."""
    from .data import ImageFolder, load_image
    from .protocol import authors_clean, authors_degrade
    from .restorers import bicubic_upsample

    folders = {name: root / name for name in ("original", "degraded", "ddrm")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    files = ImageFolder(images).files
    for index, path in enumerate(files):
        clean = authors_clean(load_image(path), size)
        y = authors_degrade("sr4_awgn50", clean, seed=seed + index)
        for name, image in (("original", clean), ("degraded", y), ("ddrm", bicubic_upsample(y[None], 4)[0])):
            save_png(image, folders[name] / f"{path.stem}.png")
    return len(files)


def write_paired_inputs(images: Path, folder: Path, task: str, seed: int = 0) -> int:
    """Stand-ins of a release's paired inputs: each image of ``images`` degraded at its own size by
    the authors' ``task`` (×4 smaller), saved as PNG under ``folder`` with its stem."""
    from .data import ImageFolder, load_image
    from .protocol import authors_degrade

    folder.mkdir(parents=True, exist_ok=True)
    files = ImageFolder(images).files
    for index, path in enumerate(files):
        save_png(authors_degrade(task, load_image(path), seed=seed + index), folder / f"{path.stem}.png")
    return len(files)


def missing_columns(task_folders: list[Path]) -> dict[str, list[str]]:
    """Per task folder, the :data:`REQUIRED_COLUMNS` with no value in some row (all when no
    metrics.csv), and the :data:`SPREAD_COLUMNS` that are not positive in every row."""
    out = {}
    for folder in task_folders:
        path = folder / "metrics.csv"
        if not path.is_file():
            out[folder.name] = ["metrics.csv (not written)"]
            continue
        table = pd.read_csv(path)
        measured = table[~table.signal.eq("x")]   # x against itself: PSNR is infinite by definition
        empty = [c for c in REQUIRED_COLUMNS if c not in table or measured[c].isna().any()]
        empty += [f"{c} > 0 (IS on 2 splits, KID on subsets smaller than the set)" for c in SPREAD_COLUMNS
                  if c in table and not (measured[c] > 0).all()]
        if empty:
            out[folder.name] = empty
    return out


def main(argv: list[str] | None = None) -> int:
    from .reproduce import format_summary, load_study, run_study
    from .standins import build_standins

    parser = argparse.ArgumentParser(prog="python -m dotlib.dryrun", description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=1, help="processes per task step (torchrun, gloo on CPU)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (one process per GPU)")
    parser.add_argument("--assets", help="folder to build (or reuse) the stand-in assets in (default: temporary)")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps of paper.yaml (shell patterns)")
    args = parser.parse_args(argv)
    os.chdir(project_root())
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dotlib-standins-") as temporary:
        root = Path(args.assets or temporary)
        print(f"building stand-in assets in {root} ...", flush=True)
        variables = build_standins(root, n_images=2 * DRY_PARAMETERS["n_fit"] + DRY_PARAMETERS["max_eval"] + 4,
                                   image_size=DRY_PARAMETERS["size"] + 32)
        variables.update(DOTLIB_DDRM=str(root / "ddrm"), DOTLIB_DIV2K_VAL=variables["DOTLIB_IMAGENET_VAL"],
                         DOTLIB_SWIN2SR_PAIRS=str(root / "swin2sr_pairs"))
        os.environ.update(variables)
        write_ddrm_standins(Path(variables["DOTLIB_IMAGENET_VAL"]), root / "ddrm", DRY_PARAMETERS["size"])
        write_paired_inputs(Path(variables["DOTLIB_DIV2K_VAL"]), root / "swin2sr_pairs", "sr4_jpeg10")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        study = dry_study(load_study(Path("studies/paper.yaml")), nproc=args.nproc, device=args.device)
        summary = run_study(study, only=args.only, force=True, stamp_dir=DRY_ROOT / ".stamps")
    print("\n" + format_summary(summary))
    failed = [record for record in summary if record["status"] in ("failed", "blocked")]
    ran = {record["step"] for record in summary}
    empty = missing_columns([Path(step.parameters["output_dir"]) for step in study.steps.values()
                             if "restorer" in step.parameters and step.name in ran])
    for task, columns in empty.items():
        print(f"{task}: no value in {', '.join(columns)}")
    print(f"dry run with {args.nproc} process{'es' if args.nproc > 1 else ''} per task: "
          f"{len(summary) - len(failed)}/{len(summary)} steps ran, "
          f"{'every metric column filled' if not empty else 'metric columns missing'}; "
          f"wall time {time.perf_counter() - began:.0f} s; outputs under {DRY_ROOT}/")
    return 1 if failed or empty else 0


if __name__ == "__main__":
    sys.exit(main())
