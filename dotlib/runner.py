r"""Paper-scale task runs: an image folder streamed through degrade → restore → transport → α → metrics.

The authors' evaluation (Adrai et al. 2023, ``dmax/main.py``): fit DOT on ``n_fit`` images
of the folder (target: the clean images; source: the restorer's outputs for THE SAME
images, fitted separately), then, batch by batch over every other image, restore, transport
once, form every x̂α of eq. (2) by mixing, and update each signal's metrics. Here the
metrics are the bounded-memory accumulators of :class:`~dotlib.metrics.StreamingEvaluator`,
so memory does not grow with the number of images (50 000 ImageNet-val images × 31 α).

Many processes (``torchrun`` or ``accelerate launch``; one per GPU)::

    torchrun --standalone --nproc_per_node 8 -m dotlib.runner run.json results/tasks/sr4__swinir

Each process (rank r of W) fits on batches r, r + W, ... of the fitting images and
evaluates batches r, r + W, ... of the evaluated images; the fitting statistics (gathered
and merged in batch order) and every metric state (:meth:`StreamingEvaluator.reduce`) are
summed over processes, and rank 0 writes the
results. CUDA devices get NCCL and ``cuda:<LOCAL_RANK>``; CPUs get gloo. Every random
choice depends on the global image index (degradation noise, latent samples, SWD patches,
KID subset, IS split), so 1 and N processes give the same counts and the same values up to
floating-point summation order. :func:`launch` starts such a run from Python (or a
notebook) and reads its result back.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.distributed as dist

from .data import ImageFolder
from .degradations import degrade, get_degradation
from .distributed import end_processes, start_processes
from .encoders import load_encoder
from .gaussian import GaussianStats
from .io import write_csv
from .latent_ot import DECODES, LatentOT
from .metrics.assets import display_path
from .metrics.inception import FID_MODES
from .metrics.streaming_evaluator import StreamingEvaluator
from .patches import valid_patch_stats
from .pipeline import TABLE_COLUMNS, perception_models, upsampled
from .progress import progress
from .restorers import FolderRestorer, get_restorer

__all__ = ["FolderRun", "RUN_OPTIONS", "launch", "main", "run_folder_task"]

#: Set-level indices whose difference to x* is reported without an interval.
SET_LEVEL_DIFFERENCES = ("swd", "detail")


@dataclass
class FolderRun:
    """What :func:`run_folder_task` measured (on rank 0; other ranks get None)."""

    table: pd.DataFrame                      # one row per signal, the study's columns
    images: dict[str, torch.Tensor]          # the first ``n_keep`` evaluated images of each kept signal, CPU
    photos: list[str]                        # their file names
    missing: dict[str, str] = field(default_factory=dict)
    description: str = ""
    theory: dict = field(default_factory=dict)     # not measured on streamed runs
    ridge: pd.DataFrame = field(default_factory=pd.DataFrame)


class _Indexed(torch.utils.data.Dataset):
    """Items ``(image, index in the evaluated list, file position)`` of ``folder`` at the listed positions.

    The evaluated-list index orders the metrics' samples (KID sample, IS split); the file
    position seeds the image's degradation noise and latent sample, the same whether the
    image is fitted or evaluated.
    """

    def __init__(self, folder: ImageFolder, positions: Sequence[int]):
        self.folder, self.positions = folder, list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        return self.folder[self.positions[item]], item, self.positions[item]


def _loader(dataset: _Indexed, rank: int, world: int, batch_size: int, workers: int):
    """Batches ``rank, rank + world, ...`` of the evaluated list cut in batches of ``batch_size``.

    Whole batches are dealt out (not images), so every batch holds the same images whatever
    the number of processes, and batched networks give the same outputs.
    """
    starts = range(rank * batch_size, len(dataset), world * batch_size)
    batches = [list(range(start, min(start + batch_size, len(dataset)))) for start in starts]
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers)


# ------------------------------------------------------------------------------ pieces


def _degraded(task: str, clean: torch.Tensor, indices: torch.Tensor, seed: int) -> torch.Tensor:
    """y of each image with noise seeded by its file position (independent of batching)."""
    return torch.cat([degrade(task, image[None], seed=seed + 20 + int(index)) for image, index in zip(clean, indices)])


def _restored(model, y: torch.Tensor, names: list[str], size: tuple[int, int]) -> torch.Tensor:
    if isinstance(model, FolderRestorer):
        return model.restore_files(names, size=size).clamp(0.0, 1.0)
    return model(y).clamp(0.0, 1.0)


def _encoded(vae, images: torch.Tensor, indices: torch.Tensor, seed: int) -> torch.Tensor:
    """Latents; a sampling VAE draws each image's sample from a generator seeded by its file position."""
    if not getattr(vae, "sample", False):
        return vae.encode(images)
    return torch.cat([vae.encode(image[None], generator=torch.Generator(vae.device).manual_seed(seed + int(index)))
                      for image, index in zip(images, indices)])


def _merged_in_order(own: dict[int, GaussianStats], count: int, world: int, dim: int,
                     device: torch.device) -> GaussianStats:
    """Every process's batch statistics (``own``: batch number -> stats), merged in batch order."""
    states = {number: stats.state_dict() for number, stats in own.items()}
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, states)
        states = {number: state for part in gathered for number, state in part.items()}
    total = GaussianStats(dim, device)
    for number in range(count):
        total.merge(GaussianStats.from_state_dict(states[number], device=device))
    return total


def _signal_key(split: str, decode: str, alpha: float) -> str:
    return f"x_alpha|{split}|{decode}|{alpha!r}"


# ------------------------------------------------------------------------------- run


def run_folder_task(
    task: str,
    restorer: str,
    data: str,
    encoder: str = "embedded",
    restorer_checkpoint: str | None = None,
    fit_split: str = "same",
    ablation_splits: Sequence[str] = (),
    decodes: Sequence[str] = ("direct",),
    size: int = 512,
    n_fit: int = 16,
    max_eval: int | None = None,
    alphas: Sequence[float] = (0.0,),
    secondary_alphas: Sequence[float] | None = None,
    seed: int = 0,
    device: str = "cpu",
    patch_size: int = 5,
    eps: float | None = None,
    ridge: str = "relative",
    border: str = "valid",
    clip_x_hat0: bool = True,
    latent: str = "mean",
    batch_size: int = 8,
    num_workers: int = 2,
    inception: bool = True,
    lpips: bool = True,
    fid_mode: str = "clean",
    kid_capacity: int = 5000,
    n_keep: int = 4,
) -> FolderRun | None:
    """One task on an image folder, streamed and data-parallel; the authors' protocol.

    Images are sorted by path and shuffled by ``seed``; the first ``n_fit`` are fitted
    (``fit_split="same"``: target = those images, source = their restorations; ``disjoint``:
    the source is the next ``n_fit`` images), every other image is evaluated (``max_eval``
    caps it), each resized (short side ``size``) and centre-cropped to ``size``². Signals:
    ``x``, ``xe`` = D(E(x)), ``y`` (upsampled), ``x_star`` and ``x_alpha`` for ``alphas`` (the
    first decoding of ``fit_split``), ``secondary_alphas`` (its other decodings) and α = 0
    (each of ``ablation_splits``). ``border``, ``clip_x_hat0``, ``latent``, ``ridge``, ``eps``
    select the authors' conventions (:meth:`LatentOT.authors`). ``fid_mode``: clean-fid's
    ``"clean"`` or ``"legacy_tensorflow"`` (comparable with the poster's torchmetrics
    numbers). Returns a :class:`FolderRun` on rank 0, None on the others.
    """
    if fit_split not in ("same", "disjoint") or any(s not in ("same", "disjoint") for s in ablation_splits):
        raise ValueError(f"on an image folder fit_split and ablation_splits must be 'same' (the authors' design) "
                         f"or 'disjoint'; got {fit_split!r}, {list(ablation_splits)}")
    if not decodes or any(d not in DECODES for d in decodes):
        raise ValueError(f"decodes must be a non-empty subset of {', '.join(DECODES)}, got {list(decodes)}")
    if fid_mode not in FID_MODES:
        raise ValueError(f"fid_mode must be one of {', '.join(FID_MODES)}, got {fid_mode!r}")
    if n_fit < 2 or (max_eval is not None and max_eval < 1) or batch_size < 1 or num_workers < 0:
        raise ValueError(f"need n_fit >= 2, max_eval >= 1 or None, batch_size >= 1 and num_workers >= 0; got "
                         f"{n_fit}, {max_eval}, {batch_size}, {num_workers}")
    get_degradation(task)
    rank, world, device_ = start_processes(device)
    splits = [fit_split] + [s for s in ablation_splits if s != fit_split]
    alphas = [float(a) for a in alphas]
    secondary = alphas if secondary_alphas is None else [float(a) for a in secondary_alphas]

    folder = ImageFolder(data, resize=size, crop=size)
    extra = n_fit if "disjoint" in splits else 0
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()
    evaluated = order[n_fit + extra:]
    if max_eval is not None:
        evaluated = evaluated[:max_eval]
    if len(evaluated) < max(2, world):
        raise ValueError(f"{data} holds {len(folder)} images: {n_fit + extra} are fitted and {len(evaluated)} "
                         f"remain to evaluate; at least {max(2, world)} are needed")
    options = {} if restorer_checkpoint is None else {"checkpoint": restorer_checkpoint}
    model = get_restorer(restorer, task, device=device_, **options)
    vae = load_encoder(encoder, device=device_, sample=latent == "sample", seed=seed)
    names = [path.name for path in folder.files]

    # fit: each process takes whole batches of the fitting images; the batches' statistics are
    # gathered and merged in batch order, so every process count gives the same operator bit for bit
    operators = {}
    fitting = {"same": (order[:n_fit], order[:n_fit]), "disjoint": (order[:n_fit], order[n_fit:n_fit + extra])}
    calibration = torch.stack([folder[i] for i in order[:n_fit]])
    dim = vae.latent_channels * patch_size ** 2
    for split in splits:
        sides = {}
        for positions, which in ((fitting[split][0], "target"), (fitting[split][1], "source")):
            chunks = [positions[start:start + batch_size] for start in range(0, len(positions), batch_size)]
            own = {}
            for number in range(rank, len(chunks), world):
                share = chunks[number]
                clean = torch.stack([folder[i] for i in share])
                indices = torch.tensor(share)
                images = clean if which == "target" else _restored(
                    model, _degraded(task, clean, indices, seed).to(device_), [names[i] for i in share],
                    (size, size))
                own[number] = valid_patch_stats(_encoded(vae, images.to(device_), indices, seed), patch_size)
            sides[which] = _merged_in_order(own, len(chunks), world, dim, device_)
        operators[split] = LatentOT.from_stats(vae, sides["source"], sides["target"], patch_size=patch_size, eps=eps,
                                               ridge=ridge, border=border, clip_x_hat0=clip_x_hat0, seed=seed,
                                               batch_size=batch_size)

    features, classifier, lpips_model, missing = perception_models(device_, inception, lpips, fid_mode)
    evaluator = StreamingEvaluator(calibration, device=device_, features=features, classifier=classifier,
                                   lpips=lpips_model, kid_capacity=kid_capacity,
                                   is_splits=min(10, len(evaluated)), seed=seed)
    sweeps = {}
    for split in splits:
        for decode in decodes:
            sweeps[(split, decode)] = (alphas if decode == decodes[0] else secondary) if split == fit_split else [0.0]
    kept: dict[str, list[torch.Tensor]] = {}
    kept_names: list[str] = []

    loader = _loader(_Indexed(folder, evaluated), rank, world, batch_size, num_workers)
    for clean, indices, positions in progress(loader, desc=f"{task} / {restorer}: evaluating (rank {rank})",
                                              total=len(loader)):
        clean = clean.to(device_)
        batch_names = [names[int(p)] for p in positions]
        y = _degraded(task, clean.cpu(), positions, seed).to(device_)
        x_star = _restored(model, y, batch_names, (size, size))
        z_star = _encoded(vae, x_star, positions, seed)
        z_clean = _encoded(vae, clean, positions, seed + 7)
        signals = {"x": clean, "xe": vae.decode(z_clean, (size, size)), "y": upsampled(y, (size, size)),
                   "x_star": x_star}
        x_hat0 = {}
        for split in splits:
            operator = operators[split]
            generator = torch.Generator(device_).manual_seed(seed + int(positions[0]))
            for decode in decodes:
                x_hat0[(split, decode)] = operator.decode_moved(z_star, x_star, 0.0, decode, generator=generator)
                for alpha in sweeps[(split, decode)]:
                    signals[_signal_key(split, decode, alpha)] = LatentOT.mix(x_hat0[(split, decode)], x_star, alpha)
        evaluator.update(clean, signals, indices)
        if rank == 0 and len(kept_names) < n_keep:
            take = min(n_keep - len(kept_names), clean.shape[0])
            keep = {"x": clean, "y": y, "x_star": x_star, "xe": signals["xe"],
                    **{f"x_hat0_{d}": x_hat0[(fit_split, d)].clamp(0, 1) for d in decodes}}
            for key, images in keep.items():
                kept.setdefault(key, []).append(images[:take].cpu())
            kept_names += batch_names[:take]

    evaluator.reduce()
    if rank != 0:
        return None
    values = evaluator.compute()
    # tables name no machine path: a folder restorer or encoder by its last folder name
    label = f"folder:{Path(model.folder).name}" if isinstance(model, FolderRestorer) else restorer
    encoder_label = Path(encoder).name if Path(encoder).expanduser().is_dir() else encoder
    rows = []
    for key, row in values.items():
        labels = {"signal": key, "fit_split": "", "decode": "", "alpha": math.nan}
        if key.startswith("x_alpha|"):
            _, split, decode, alpha = key.split("|")
            labels = {"signal": "x_alpha", "fit_split": split, "decode": decode, "alpha": float(alpha)}
        rows.append({"task": task, "restorer": label, "encoder": encoder_label, **labels,
                     "n_photos": row["n_images"], "n_crops": row["n_images"], **row})
    table = pd.DataFrame(rows)
    star = table[table.signal.eq("x_star")].iloc[0]
    for metric in SET_LEVEL_DIFFERENCES:   # no interval over images for set-level indices
        table[f"d_{metric}"] = table[metric] - star[metric]
    table["latent_w2_fitted"] = table.fit_split.map({s: operators[s].latent_w2 for s in splits})
    table = table.reindex(columns=list(dict.fromkeys(TABLE_COLUMNS + list(table.columns))))
    images = {key: torch.cat(parts) for key, parts in kept.items()}
    images["x_hat0"] = images[f"x_hat0_{decodes[0]}"]
    description = (f"{display_path(data)}: {n_fit} fitting images ({fit_split}), {len(evaluated)} evaluated at {size}², "
                   f"{world} process{'es' if world > 1 else ''} (shuffled with seed {seed}); metrics streamed "
                   f"(per-image differences to x* with normal 95 % intervals over images)")
    return FolderRun(table=table, images=images, photos=kept_names, missing=missing, description=description)


# ---------------------------------------------------------------------------- launching

#: Keyword arguments of :func:`run_folder_task` that a run configuration may set.
RUN_OPTIONS = tuple(run_folder_task.__code__.co_varnames[:run_folder_task.__code__.co_argcount])


def _check_config(config: dict) -> dict:
    unknown = sorted(set(config) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown run options {unknown}; known: {', '.join(RUN_OPTIONS)}")
    return config


def launch(nproc: int = 1, **config) -> FolderRun:
    """Run :func:`run_folder_task` with ``config`` on ``nproc`` processes and return rank 0's result.

    ``nproc`` = 1 runs in this process; more starts ``torchrun --standalone`` (one process
    per GPU with ``device="cuda"``, else gloo on CPU) and reads rank 0's result file back.
    """
    _check_config(config)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}")
    if nproc == 1:
        return run_folder_task(**config)
    with tempfile.TemporaryDirectory(prefix="dotlib-run-") as folder:
        config_path, result_path = Path(folder) / "run.json", Path(folder) / "result.pt"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "dotlib.runner", str(config_path), "--result", str(result_path)]
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"the {nproc}-process run failed (exit {completed.returncode}):\n"
                               + completed.stdout[-4000:])
        saved = torch.load(result_path, weights_only=False)
    return FolderRun(table=pd.DataFrame(saved["table"]), images=saved["images"], photos=saved["photos"],
                     missing=saved["missing"], description=saved["description"])


def main(argv: list[str] | None = None) -> int:
    """``python -m dotlib.runner CONFIG.json [OUTPUT_DIR] [--result FILE]`` (under torchrun for many processes)."""
    parser = argparse.ArgumentParser(prog="python -m dotlib.runner", description=main.__doc__)
    parser.add_argument("config", help="JSON object of run_folder_task arguments (task, restorer, data, ...)")
    parser.add_argument("output", nargs="?", help="folder for metrics.csv and missing_metrics.json (rank 0)")
    parser.add_argument("--result", help="file for the whole result (torch.save), read by launch()")
    args = parser.parse_args(argv)
    config = _check_config(json.loads(Path(args.config).read_text()))
    try:
        run = run_folder_task(**config)
    finally:
        end_processes()
    if run is not None:
        if args.output:
            output = Path(args.output)
            write_csv(run.table, output / "metrics.csv")
            (output / "missing_metrics.json").write_text(json.dumps(run.missing, indent=1, sort_keys=True) + "\n")
        if args.result:
            torch.save({"table": run.table.to_dict("list"), "images": run.images, "photos": run.photos,
                        "missing": run.missing, "description": run.description}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
