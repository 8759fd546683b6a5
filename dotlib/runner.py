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
from PIL import Image

from .checkpoints import Resumed, RunCheckpoint
from .data import MatchedFolder, load_image
from .protocol import PreparedFolder, check_protocol, degraded, paired, restorer_tile, y_upsampling
from .degradations import get_degradation
from .distributed import end_processes, start_processes
from .encoders import load_encoder
from .gaussian import GaussianStats
from .io import write_csv
from .latent_ot import LatentOT
from .metrics.assets import display_path
from .metrics.inception import FID_MODES
from .metrics.streaming_evaluator import StreamingEvaluator
from .patches import valid_patch_stats
from .pipeline import (alpha_sweeps, check_decodes, fitted_designs, ordered_table, perception_models,
                       upsampled)
from .progress import progress
from .restorers import FolderRestorer, SpandrelRestorer, get_restorer
from .validate import check_values_at_once, of_type, values_checked

__all__ = ["FolderRun", "RUN_OPTIONS", "launch", "main", "run_folder_task"]

#: Set-level indices whose difference to x* is reported without an interval.
SET_LEVEL_DIFFERENCES = ("swd", "detail")

#: Fitting designs on an image folder: the authors' (the same images), and disjoint images.
FOLDER_SPLITS = ("same", "disjoint")

#: How the fitting images are picked: ``shuffled`` by ``seed`` (the first ``n_fit`` are the target,
#: the next ``n_fit`` the disjoint design's source), or ``alternating``, the authors' DDRM run
#: (``dmax/precomputed_results.py``): in file-name order, the first 2·n_fit images alternately
#: target (even positions) and source (odd positions).
FIT_ORDERS = ("shuffled", "alternating")


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
    decodings: pd.DataFrame = field(default_factory=pd.DataFrame)   # not measured on streamed runs


class _Indexed(torch.utils.data.Dataset):
    """Items ``(image, index in the evaluated list, file position)`` of ``folder`` at the listed positions.

    The evaluated-list index orders the metrics' samples (KID sample, IS split); the file
    position seeds the image's degradation noise and latent sample, the same whether the
    image is fitted or evaluated.
    """

    def __init__(self, folder: PreparedFolder, positions: Sequence[int]):
        self.folder, self.positions = folder, list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        return self.folder[self.positions[item]], item, self.positions[item]


def _loader(dataset: _Indexed, rank: int, world: int, batch_size: int, workers: int, skip: int = 0):
    """Batches ``rank, rank + world, ...`` of the evaluated list cut in batches of ``batch_size``,
    after this process's first ``skip`` (done before a resume).

    Whole batches are dealt out (not images), so every batch holds the same images whatever
    the number of processes, and batched networks give the same outputs.
    """
    starts = range(rank * batch_size, len(dataset), world * batch_size)
    batches = [list(range(start, min(start + batch_size, len(dataset)))) for start in starts]
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches[skip:], num_workers=workers), len(batches)


# ------------------------------------------------------------------------------ pieces


def _degraded(task: str, clean: torch.Tensor, indices: torch.Tensor, seed: int, protocol: str) -> torch.Tensor:
    """y of each image by ``protocol``, with noise seeded by its file position (independent of batching)."""
    return torch.stack([degraded(task, image, protocol, seed + 20 + int(index)) for image, index in zip(clean, indices)])


def _restored(model, y: torch.Tensor, names: list[str], size: tuple[int, int]) -> torch.Tensor:
    """x* of the batch: precomputed files matched by name, else the restorer's output (clipped unless
    its ``clip`` is False)."""
    if isinstance(model, FolderRestorer):
        return model.restore_files(names, size=size).clamp(0.0, 1.0)
    return model(y)


def _encoded(vae, images: torch.Tensor, indices: torch.Tensor, seed: int, bounded: bool = True) -> torch.Tensor:
    """Latents of the batch, encoded at once; a sampling VAE draws each image's sample from its own
    generator, seeded by the image's file position (diffusers' per-image generators), so a sample
    does not depend on the batch it falls in. ``bounded=False``: unclipped restorations."""
    if not getattr(vae, "sample", False):
        return vae.encode(images, bounded=bounded)
    return vae.encode(images, bounded=bounded, generator=[torch.Generator(vae.device).manual_seed(seed + int(index))
                                                          for index in indices])


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
    fit_data: str | None = None,
    degraded_data: str | None = None,
    restorer_checkpoint: str | None = None,
    fit_split: str = "same",
    ablation_splits: Sequence[str] = (),
    fit_order: str = "shuffled",
    decodes: Sequence[str] = ("direct",),
    size: int = 512,
    protocol: str = "dotlib",
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
    clip_x_star: bool = True,
    latent: str = "mean",
    batch_size: int = 8,
    num_workers: int = 2,
    inception: bool = True,
    lpips: bool = True,
    fid_mode: str = "clean",
    kid_capacity: int = 5000,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    n_keep: int = 4,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 25,
) -> FolderRun | None:
    """One task on an image folder, streamed and data-parallel; the authors' protocol.

    Images are sorted by path and shuffled by ``seed``; the first ``n_fit`` are fitted (``same``:
    target = those images, source = their restorations; ``disjoint``: the source is the next
    ``n_fit``), the others evaluated (at most ``max_eval``). ``fit_order="alternating"`` (the
    authors' DDRM run) fits in file-name order instead: the first 2·n_fit images alternately,
    target at even positions, source (``disjoint``) at odd ones (see :data:`FIT_ORDERS`). With ``fit_data`` (the authors: 16
    ImageNet *train* images) the fitted images come from that folder and all of ``data`` is
    evaluated. Images are prepared at ``size``² by ``protocol`` (:mod:`dotlib.protocol`).
    With ``degraded_data`` every degraded input y is read from that folder, matched to its clean
    image by name (:func:`dotlib.protocol.paired`: the Swin2SR release's pairs, DDRM's inputs)
    instead of being made from x. Signals: ``x``, ``xe`` = D(E(x)), ``y`` (upsampled), ``x_star`` and ``x_alpha`` for
    ``alphas`` (the first decoding of ``fit_split``), ``secondary_alphas`` (its other decodings)
    and α = 0 (each of ``ablation_splits``). ``border``, ``clip_x_hat0``, ``latent``, ``ridge``,
    ``eps`` select the authors' conventions (:meth:`LatentOT.authors`); ``clip_x_star=False`` keeps
    the restorer's output unclipped where it is encoded (fitting and transport) and mixed, as the
    authors do (x* is measured clipped, as theirs); ``fid_mode``: clean-fid's
    ``"clean"`` or ``"legacy_tensorflow"`` (the poster's); ``kid_*``, ``is_splits``: KID's subsets
    and IS's splits (at most one per image). ``checkpoint_dir``: each process saves its state
    there every ``checkpoint_every`` batches and logs each batch (:mod:`dotlib.checkpoints`); a
    rerun with the same settings resumes. A :class:`FolderRun` on rank 0, else None.
    """
    settings = {key: value for key, value in locals().items() if not key.startswith("checkpoint")}
    splits = fitted_designs(fit_split, ablation_splits, FOLDER_SPLITS)
    decodes = check_decodes(decodes)
    _check_folder_options(task, fid_mode, n_fit, max_eval, batch_size, num_workers, protocol, fit_order)
    rank, world, device_ = start_processes(device)
    fitted = n_fit * (2 if "disjoint" in splits or fit_order == "alternating" else 1)
    folder, fit_folder, order, evaluated = _chosen_images(data, fit_data, protocol, size, fitted, max_eval, seed,
                                                          max(2, world), shuffle=fit_order == "shuffled")
    run = _FolderRun(task, folder, [path.name for path in folder.files],
                     _restorer(restorer, task, device_, restorer_checkpoint, protocol, clip_x_star),
                     load_encoder(encoder, device=device_, sample=latent == "sample", seed=seed),
                     device_, seed, size, rank, world, batch_size,
                     None if degraded_data is None else MatchedFolder(degraded_data, "degraded folder", "input"),
                     clip_x_star)
    _check_inputs(run, [fit_folder.files[i].name for i in order[:fitted]] + [run.names[i] for i in evaluated])
    fitting = _fitting_positions(order, n_fit, fit_order)
    operators = {split: _fit_operator(run, fit_folder, *fitting[split], patch_size=patch_size, eps=eps, ridge=ridge,
                                      border=border, clip_x_hat0=clip_x_hat0) for split in splits}
    features, classifier, lpips_model, missing = perception_models(device_, inception, lpips, fid_mode)
    evaluator = StreamingEvaluator(torch.stack([fit_folder[i] for i in fitting["same"][0]]), device=device_,
                                   features=features, classifier=classifier, lpips=lpips_model, seed=seed,
                                   kid_capacity=kid_capacity, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                   is_splits=min(is_splits, len(evaluated)))
    checkpoint = RunCheckpoint(checkpoint_dir, settings, rank, world, checkpoint_every)
    done = checkpoint.resume(evaluator)
    loader = _loader(_Indexed(folder, evaluated), rank, world, batch_size, num_workers, skip=done.batches)
    _evaluate(run, operators, alpha_sweeps(splits, decodes, alphas, secondary_alphas), loader, evaluator,
              f"{task} / {restorer}", n_keep, done, checkpoint)
    evaluator.reduce()
    checkpoint.finish()
    kept, kept_names = done.kept, done.kept_names
    restoring = _restorer_note(run)   # every process takes part (a sum over processes)
    if rank != 0:
        return None
    paired_from = "" if degraded_data is None else f", y read from {display_path(degraded_data)}"
    picked = "" if fit_order == "shuffled" else f", {fit_order} in name order"
    description = _description(data, fit_data, f"{n_fit} fitting images{picked}", fit_split, len(evaluated),
                               f"{size}² ({protocol} protocol{paired_from}{restoring})", world, seed)
    return _folder_run(run, evaluator.compute(), operators, kept, kept_names, missing, (restorer, encoder, decodes[0]),
                       description)


def _fitting_positions(order: list[int], n_fit: int, fit_order: str) -> dict[str, tuple[list[int], list[int]]]:
    """``{design: (target positions, source positions)}`` in the fitting folder, whose positions
    are taken in ``order`` (:data:`FIT_ORDERS` says how ``fit_order`` picks them)."""
    if fit_order == "alternating":
        target, other = order[0:2 * n_fit:2], order[1:2 * n_fit:2]
    else:
        target, other = order[:n_fit], order[n_fit:2 * n_fit]
    return {"same": (target, target), "disjoint": (target, other)}


def _order(folder: PreparedFolder, seed: int, shuffle: bool) -> list[int]:
    """The folder's positions, shuffled by ``seed`` or in file-name order."""
    if not shuffle:
        return list(range(len(folder)))
    return torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()


def _shuffled(folder: PreparedFolder, fitted: int, max_eval: int | None, seed: int,
              needed: int, shuffle: bool = True) -> tuple[list[int], list[int]]:
    """``(order, evaluated)``: the folder's positions (:func:`_order`), and those after the
    first ``fitted`` (at most ``max_eval``); ``ValueError`` when fewer than ``needed`` remain."""
    order = _order(folder, seed, shuffle)
    evaluated = order[fitted:][:max_eval]
    if len(evaluated) < needed:
        raise ValueError(f"{folder.folder.root} holds {len(folder)} images: {fitted} are fitted and {len(evaluated)} "
                         f"remain to evaluate; at least {needed} are needed")
    return order, evaluated


def _folder_run(run: _FolderRun, values: dict, operators: dict[str, LatentOT], kept: dict, kept_names: list[str],
                missing: dict, names: tuple[str, str, str], description: str) -> FolderRun:
    """Rank 0's result: the table from the evaluator's ``values`` labelled with ``names`` (restorer,
    encoder, headline decoding), the kept images, what is missing and the run's description."""
    restorer, encoder, headline = names
    labels = {"task": run.task, "restorer": _restorer_label(run.model, restorer), "encoder": _encoder_label(encoder)}
    images = {key: torch.cat(parts) for key, parts in kept.items()} | {"x_hat0": torch.cat(kept[f"x_hat0_{headline}"])}
    return FolderRun(table=_folder_table(values, labels, operators), images=images, photos=kept_names,
                     missing=missing, description=description)


def _restorer(name: str, task: str, device: torch.device, checkpoint: str | None, protocol: str, clip: bool):
    """The restorer, its output clipped or not; a published one sees whole images or tiles as ``protocol`` says."""
    model = get_restorer(name, task, device=device, **({} if checkpoint is None else {"checkpoint": checkpoint}))
    model.clip = clip
    if isinstance(model, SpandrelRestorer):
        model.tile = restorer_tile(protocol)
    return model


def _restorer_note(run: _FolderRun) -> str:
    """How a published restorer ran: on tiles, or on whole images and how many batches (summed over
    processes) fell back to tiles for memory; empty for other restorers."""
    if not isinstance(run.model, SpandrelRestorer):
        return ""
    if run.model.tile is not None:
        return f"; restorer on {run.model.tile}-px tiles"
    count = torch.tensor([run.model.fallbacks], device=run.device)
    if run.world > 1:
        dist.all_reduce(count)
    fell_back = int(count.item())
    return "; restorer on whole images" + (f", {fell_back} batches on tiles for memory" if fell_back else "")


def _check_inputs(run: _FolderRun, names: list[str]) -> None:
    """A folder restorer (precomputed outputs) and a degraded folder must each hold a file for every
    image the run reads, checked before any work."""
    if isinstance(run.model, FolderRestorer):
        run.model.check_outputs(names)
    if run.degraded is not None:
        run.degraded.check(names)


def _description(data: str, fit_data: str | None, fitting: str, fit_split: str, evaluated: int, prepared: str,
                 world: int, seed: int) -> str:
    """One sentence on what a folder run fitted and evaluated, and how."""
    fitted_from = "" if fit_data is None else f" from {display_path(fit_data)}"
    return (f"{display_path(data)}: {fitting}{fitted_from} ({fit_split}), {evaluated} evaluated at {prepared}, "
            f"{world} process{'es' if world > 1 else ''} (shuffled with seed {seed}); metrics streamed "
            f"(differences to x* with normal 95 % intervals over images)")


def _chosen_images(data: str, fit_data: str | None, protocol: str, size: int, fitted: int, max_eval: int | None,
                   seed: int, needed: int, shuffle: bool) -> tuple[PreparedFolder, PreparedFolder, list[int], list[int]]:
    """``(folder, fitting folder, fitting order, evaluated positions)``: with one folder, its
    positions shuffled (or in name order, ``shuffle=False``): the first ``fitted`` are fitted, the
    rest evaluated; with ``fit_data``, the fitting folder's positions and every image of ``data``
    (at most ``max_eval``)."""
    folder = PreparedFolder(data, protocol, size)
    if fit_data is None:
        order, evaluated = _shuffled(folder, fitted, max_eval, seed, needed, shuffle)
        return folder, folder, order, evaluated
    fit_folder = PreparedFolder(fit_data, protocol, size)
    return (folder, fit_folder, _fitting_order(fit_folder, fitted, seed, shuffle),
            _shuffled(folder, 0, max_eval, seed, needed)[1])


def _fitting_order(folder: PreparedFolder, fitted: int, seed: int, shuffle: bool) -> list[int]:
    """The positions of a separate fitting folder (:func:`_order`); ``ValueError`` when it
    holds fewer than the ``fitted`` images the designs need."""
    if len(folder) < fitted:
        raise ValueError(f"the fitting folder {folder.folder.root} holds {len(folder)} images; the designs fit on "
                         f"{fitted} (n_fit, twice with the disjoint ablation or the alternating order)")
    return _order(folder, seed, shuffle)


def _check_folder_options(task: str, fid_mode: str, n_fit: int, max_eval: int | None, batch_size: int,
                          num_workers: int, protocol: str, fit_order: str) -> None:
    """Clear errors before anything loads."""
    check_protocol(protocol)
    if fit_order not in FIT_ORDERS:
        raise ValueError(f"fit_order must be one of {', '.join(FIT_ORDERS)}, got {fit_order!r}")
    if fid_mode not in FID_MODES:
        raise ValueError(f"fid_mode must be one of {', '.join(FID_MODES)}, got {fid_mode!r}")
    if n_fit < 2 or (max_eval is not None and max_eval < 1) or batch_size < 1 or num_workers < 0:
        raise ValueError(f"need n_fit >= 2, max_eval >= 1 or None, batch_size >= 1 and num_workers >= 0; got "
                         f"{n_fit}, {max_eval}, {batch_size}, {num_workers}")
    get_degradation(task)


@dataclass
class _FolderRun:
    """What every step of a folder run needs: the data, the models and where this process stands."""

    task: str
    folder: PreparedFolder
    names: list[str]            # file name of each image of the folder
    model: object               # the restorer
    vae: object                 # the encoder
    device: torch.device
    seed: int
    size: int
    rank: int
    world: int
    batch_size: int
    degraded: MatchedFolder | None = None   # y read from files (paired), else made from x
    clip_x_star: bool = True                # False: x* encoded and mixed unclipped (the authors)

    def restored(self, clean: torch.Tensor, positions: torch.Tensor,
                 folder: PreparedFolder | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, x*)`` on the device, of clean images (best on the CPU, where y is made) at these file
        positions of ``folder`` (default: the evaluated folder; y read from the degraded folder, else made
        with noise seeded by position)."""
        folder = folder or self.folder
        files = [folder.files[int(p)] for p in positions]
        if self.degraded is None:
            y = _degraded(self.task, clean.cpu(), positions, self.seed, folder.protocol)
        else:
            y = torch.stack([self.paired_input(file, folder.protocol) for file in files])
        y = y.to(self.device)
        return y, _restored(self.model, y, [file.name for file in files], (self.size, self.size))

    def paired_input(self, file: Path, protocol: str) -> torch.Tensor:
        """y of the clean image ``file``, read from the degraded folder and prepared by ``protocol``."""
        with Image.open(file) as photo:
            clean_side = min(photo.size)
        return paired(load_image(self.degraded.find(file.name)), clean_side, self.task, protocol, self.size,
                      clean_size_allowed=isinstance(self.model, FolderRestorer))


def _fit_side(run: _FolderRun, folder: PreparedFolder, positions: list[int], which: str,
              patch_size: int) -> GaussianStats:
    """Statistics of one side (``"target"``: clean images; ``"source"``: their restorations).

    Each process takes whole batches; the batches' statistics are gathered and merged in batch
    order, so every process count gives the same operator bit for bit.
    """
    chunks = [positions[start:start + run.batch_size] for start in range(0, len(positions), run.batch_size)]
    own = {}
    for number in range(run.rank, len(chunks), run.world):
        share = torch.tensor(chunks[number])
        clean = torch.stack([folder[i] for i in chunks[number]])
        images = clean if which == "target" else run.restored(clean, share, folder)[1]
        latents = _encoded(run.vae, images.to(run.device), share, run.seed, bounded=run.clip_x_star or which == "target")
        own[number] = valid_patch_stats(latents, patch_size)
    return _merged_in_order(own, len(chunks), run.world, run.vae.latent_channels * patch_size ** 2, run.device)


def _fit_operator(run: _FolderRun, folder: PreparedFolder, target: list[int], source: list[int], patch_size: int,
                  **options) -> LatentOT:
    """The operator fitted on the clean images of ``folder`` at ``target`` and the restorations of
    those at ``source``."""
    target_stats = _fit_side(run, folder, target, "target", patch_size)
    source_stats = _fit_side(run, folder, source, "source", patch_size)
    return LatentOT.from_stats(run.vae, source_stats, target_stats, patch_size=patch_size, seed=run.seed,
                               batch_size=run.batch_size, **options)


def _batch_signals(run: _FolderRun, operators: dict[str, LatentOT], sweeps: dict, clean: torch.Tensor,
                   positions: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict, torch.Tensor]:
    """``(signals, x̂0 per (design, decoding), y)`` of one batch. x* is checked once (one host read);
    encoding, decoding and transport then trust it."""
    size = (run.size, run.size)
    y, x_star = run.restored(clean, positions)   # unclipped when run.clip_x_star is False
    clean = clean.to(run.device)
    check_values_at_once({"x_star": x_star}, *((0.0, 1.0) if run.clip_x_star else (-math.inf, math.inf)))
    with values_checked():   # one host read above; the encoder and the transport trust it
        z_star = _encoded(run.vae, x_star, positions, run.seed, bounded=run.clip_x_star)
        z_clean = _encoded(run.vae, clean, positions, run.seed + 7)
        signals = {"x": clean, "xe": run.vae.decode(z_clean, size),
                   "y": upsampled(y, size, y_upsampling(run.folder.protocol)), "x_star": x_star.clamp(0.0, 1.0)}
        x_hat0 = _transported(run, operators, sweeps, x_star, z_star, positions, signals)
    return signals, x_hat0, y


def _transported(run: _FolderRun, operators: dict[str, LatentOT], sweeps: dict, x_star: torch.Tensor,
                 z_star: torch.Tensor, positions: torch.Tensor, signals: dict) -> dict:
    """x̂0 per (design, decoding) of one batch, every x̂α added to ``signals``: one transport per design,
    decoded once for every decoding, every α by mixing (eq. 2)."""
    x_hat0 = {}
    for split, operator in operators.items():
        generator = torch.Generator(run.device).manual_seed(run.seed + int(positions[0]))
        chosen = {decode: alphas for (s, decode), alphas in sweeps.items() if s == split}
        plans = {decode: alphas if 0.0 in alphas else [*alphas, 0.0] for decode, alphas in chosen.items()}
        images = operator.apply(x_star, plans, latents=z_star, generator=generator, bounded=run.clip_x_star)
        for decode, alphas in chosen.items():
            x_hat0[(split, decode)] = images[decode][plans[decode].index(0.0)]
            signals.update({_signal_key(split, decode, alpha): image for alpha, image in zip(alphas, images[decode])})
    return x_hat0


def _evaluate(run: _FolderRun, operators: dict[str, LatentOT], sweeps: dict, loaded: tuple, evaluator: StreamingEvaluator,
              name: str, n_keep: int, done: Resumed, checkpoint: RunCheckpoint) -> None:
    """Update ``evaluator`` with every batch of ``loaded`` (a loader and this process's batch count);
    ``done`` counts the batches and keeps the first ``n_keep`` images of each kept signal (rank 0)
    and their file names; ``checkpoint`` logs each batch and saves the state."""
    headline = next(iter(operators))
    loader, total = loaded
    checkpoint.begin(done)
    for clean, indices, positions in progress(loader, desc=f"{name}: evaluating (rank {run.rank})",
                                              total=total, initial=done.batches, unit="batch"):
        signals, x_hat0, y = _batch_signals(run, operators, sweeps, clean, positions)
        clean = signals["x"]   # on the device now
        evaluator.update(clean, signals, indices)
        if run.rank == 0 and len(done.kept_names) < n_keep:
            take = min(n_keep - len(done.kept_names), clean.shape[0])
            keep = {"x": clean, "y": y, "x_star": signals["x_star"], "xe": signals["xe"],
                    **{f"x_hat0_{d}": image.clamp(0, 1) for (s, d), image in x_hat0.items() if s == headline}}
            for key, images in keep.items():
                done.kept.setdefault(key, []).append(images[:take].cpu())
            done.kept_names += [run.names[int(p)] for p in positions[:take]]
        done.batches += 1
        checkpoint.step(done, total, evaluator.images_seen, evaluator)


def _restorer_label(model, restorer: str) -> str:
    """A restorer as tables name it: no machine path (a folder restorer by its last folder name)."""
    return f"folder:{Path(model.folder).name}" if isinstance(model, FolderRestorer) else restorer


def _encoder_label(encoder: str) -> str:
    return Path(encoder).name if Path(encoder).expanduser().is_dir() else encoder


def _folder_table(values: dict[str, dict], labels: dict, operators: dict[str, LatentOT]) -> pd.DataFrame:
    """The study table of a streamed run from the evaluator's values (one row per signal)."""
    rows = []
    for key, row in values.items():
        signal = {"signal": key, "fit_split": "", "decode": "", "alpha": math.nan}
        if key.startswith("x_alpha|"):
            _, split, decode, alpha = key.split("|")
            signal = {"signal": "x_alpha", "fit_split": split, "decode": decode, "alpha": float(alpha)}
        rows.append({**labels, **signal, "n_photos": row["n_images"], "n_crops": row["n_images"], **row})
    table = pd.DataFrame(rows)
    star = table[table.signal.eq("x_star")].iloc[0]
    for metric in SET_LEVEL_DIFFERENCES:   # no interval over images for set-level indices
        table[f"d_{metric}"] = table[metric] - star[metric]
    table["latent_w2_fitted"] = table.fit_split.map({s: operator.latent_w2 for s, operator in operators.items()})
    return ordered_table(table)


# ---------------------------------------------------------------------------- launching

#: Keyword arguments of :func:`run_folder_task` that a run configuration may set.
RUN_OPTIONS = tuple(run_folder_task.__code__.co_varnames[:run_folder_task.__code__.co_argcount])


def _check_config(config: dict) -> dict:
    """``config`` if it names only :data:`RUN_OPTIONS`, each of its annotated type (no string is
    taken for a number or a list: ``"alphas": "05"`` is refused); else one ``ValueError``."""
    unknown = sorted(set(config) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown run options {unknown}; known: {', '.join(RUN_OPTIONS)}")
    kinds = run_folder_task.__annotations__
    wrong = [f"{name!r} must be {kinds[name]}, got {type(value).__name__} {value!r}"
             for name, value in config.items() if not of_type(value, kinds[name])]
    if wrong:
        raise ValueError("run options of the wrong type: " + "; ".join(wrong))
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
