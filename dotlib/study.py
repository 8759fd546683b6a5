r"""The study runner: degrade, restore, fit DOT few-shot and unpaired, transport, sweep α, measure.

``run_task`` is one block of the paper's table: for a task (degradation) and a restorer it
returns the metrics of every signal — the clean images ``x``, their VAE round trip ``xe`` =
D(E(x)) (the bound of any latent method), the degraded input ``y`` (upsampled), the
restorer's output ``x_star`` and the DOT outputs ``x_alpha`` of eq. (2) — each with a paired
bootstrap interval over photos of its difference to ``x_star``.

Fitting designs (``fit_split``), the statistics being fitted separately in all of them
(unpaired: no pixel pairs are used):

``same``      the authors' design (``dmax/main.py`` draws both sets from one dataset with
              the same seed): target = n_fit natural images, source = the restorer's
              outputs for THOSE images;
``matched``   target and source from different crops of the same photos;
``disjoint``  target and source from different photos.

Embedded photos (``data="embedded"``): the study's photo pool (``dotlib.data.PHOTO_POOL``,
photos that no trained component has seen) is cut into non-overlapping crops and into
``n_folds`` folds of photos; each fold is evaluated by operators fitted on the other folds'
photos (cross-fitting), so every photo is evaluated and none by statistics that saw it.
Image folders (e.g. ImageNet validation) are streamed, as the authors ran them, by
:func:`dotlib.runner.run_folder_task`.

Decoding (``decodes``): ``direct`` (the paper) and ``residual``
(:meth:`dotlib.latent_ot.LatentOT.apply`); both are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from .progress import progress

from .data import photo_folds, photo_pool
from .degradations import degrade, get_degradation
from .encoders import Encoder, load_encoder
from .gaussian import DEFAULT_EPS, DEFAULT_RELATIVE_EPS, GaussianStats, w2
from .latent_ot import DECODES, LatentOT
from .metrics import fid, inception_score, kid
from .metrics.distortion import mse, psnr_of_mse
from .metrics.registry import metric, per_image_functions
from .metrics.detail import DetailFrechet
from .metrics.paired import PairedBootstrap
from .patches import valid_patch_stats
from .pipeline import (alpha_sweeps, check_decodes, fitted_designs, ordered_table, perception_models,
                       upsampled)
from .restorers import get_restorer
from .tables import verdict

__all__ = [
    "FIT_SPLITS", "RIDGE_SETTINGS", "TABLE_ALPHAS", "Design", "TaskRun", "decoding_gaps", "default_alphas",
    "describe_finding",
    "design_for_pool", "fitting_sets", "latent_stats", "per_crop_psnr", "pixel_w2_per_dim", "run_task", "x_hat0_row",
    "theory_check",
]

#: Fitting designs; the first is the authors' (see the module notes).
FIT_SPLITS = ("same", "matched", "disjoint")

#: α at which every metric (SSIM included) is measured; SSIM is skipped at the other α of
#: the sweep (it costs as much as all other metrics together).
TABLE_ALPHAS = (0.0, 0.5)

#: The ridges compared on the fitting photos: (name, ridge, eps).
RIDGE_SETTINGS = (("none", "absolute", 0.0), ("relative 1e-9 (default)", "relative", DEFAULT_RELATIVE_EPS),
                  ("absolute 1e-7 (authors)", "absolute", DEFAULT_EPS))

#: Theory's bound on the PSNR cost of x̂0 for an MMSE restorer: MSE(x̂0) <= 2·MSE(x*).
THEORY_BOUND_DB = 10.0 * math.log10(2.0)


def default_alphas(start: float = -1.0, stop: float = 2.0, step: float = 0.1) -> list[float]:
    """α from ``start`` to ``stop`` inclusive in steps of ``step`` (rounded to 10 decimals).

    ``stop`` is always the last value and never overshot; a step that does not divide the
    range ends with a shorter last step. ``step`` must be positive and ``start <= stop``.
    """
    values = [start, stop, step]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"start, stop and step must be finite numbers, got {start!r}, {stop!r}, {step!r}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if start > stop:
        raise ValueError(f"start ({start}) must not exceed stop ({stop})")
    count = int(math.floor((stop - start) / step + 1e-9))
    alphas = [round(start + index * step, 10) for index in range(count + 1)]
    if not math.isclose(alphas[-1], stop, abs_tol=1e-9):
        alphas.append(round(stop, 10))
    alphas[-1] = round(stop, 10)
    return alphas


# ----------------------------------------------------------------------------- designs


@dataclass
class Design:
    """Which images fit and which are evaluated.

    ``images [N, 3, H, W]`` and ``photos`` (length N, the bootstrap unit of each image);
    ``folds``: list of ``(evaluated indices, {fit_split: (target indices, source indices)})``.
    Every evaluated index appears in exactly one fold.
    """

    images: torch.Tensor
    photos: list[str]
    folds: list[tuple[list[int], dict[str, tuple[list[int], list[int]]]]]
    description: str

    @property
    def evaluated(self) -> list[int]:
        return sorted(index for indices, _ in self.folds for index in indices)


def _round_robin(photos: Sequence[str], crops: dict[str, list[int]], limit: int) -> list[int]:
    """First crop of each photo (in order), then the second ones, ...; at most ``limit``."""
    out, depth = [], 0
    while len(out) < limit and any(len(crops[p]) > depth for p in photos):
        out += [crops[p][depth] for p in photos if len(crops[p]) > depth]
        depth += 1
    return out[:limit]


def _fit_sets(fitting: Sequence[str], crops: dict[str, list[int]], n_fit: int,
              splits: Sequence[str]) -> dict[str, tuple[list[int], list[int]]]:
    sets = {}
    for split in splits:
        if split == "same":
            chosen = _round_robin(fitting, crops, n_fit)
            sets[split] = (chosen, chosen)
        elif split == "matched":
            paired = [p for p in fitting if len(crops[p]) >= 2][:n_fit]
            sets[split] = ([crops[p][0] for p in paired], [crops[p][1] for p in paired])
        elif split == "disjoint":
            first, second = list(fitting[0::2]), list(fitting[1::2])
            sets[split] = (_round_robin(first, crops, n_fit), _round_robin(second, crops, n_fit))
        else:
            raise ValueError(f"unknown fit_split {split!r}; known: {', '.join(FIT_SPLITS)}")
        if min(len(sets[split][0]), len(sets[split][1])) < 2:
            raise ValueError(f"fit_split {split!r} leaves fewer than 2 images on one side; use more photos")
    return sets


def _crops_by_photo(photos: Sequence[str]) -> dict[str, list[int]]:
    """Indices of the images of each photo, in order."""
    crops: dict[str, list[int]] = {}
    for index, name in enumerate(photos):
        crops.setdefault(name, []).append(index)
    return crops


def fitting_sets(photos: Sequence[str], n_fit: int, split: str = "same") -> tuple[list[int], list[int]]:
    """(target indices, source indices) of one fitting design over images from ``photos`` (one name each)."""
    crops = _crops_by_photo(photos)
    return _fit_sets(sorted(crops), crops, n_fit, [split])[split]


def design_for_pool(size: int = 256, crops_per_photo: int = 2, n_folds: int = 6, n_fit: int = 16,
                    splits: Sequence[str] = FIT_SPLITS, seed: int = 0) -> Design:
    """Cross-fitting over folds of the study's photo pool (``dotlib.data.photo_pool``)."""
    images, photos = photo_pool(size, crops_per_photo)
    crops = _crops_by_photo(photos)
    folds = []
    for held_out in photo_folds(photos, n_folds, seed):
        fitting = [p for p in sorted(crops) if p not in held_out]
        evaluated = [i for p in held_out for i in crops[p]]
        folds.append((evaluated, _fit_sets(fitting, crops, n_fit, splits)))
    return Design(images, photos, folds,
                  f"{len(crops)} photos, {images.shape[0]} crops {size}², cross-fitted over {n_folds} folds "
                  f"of photos; {n_fit} fitting crops per side")


# ----------------------------------------------------------------------------- running


@dataclass
class TaskRun:
    """What ``run_task`` measured, with the images kept for collages."""

    table: pd.DataFrame                 # one row per signal (see ``run_task``)
    images: dict[str, torch.Tensor]     # x, y, x_star, xe, x_hat0_<decode>: evaluated images, CPU
    photos: list[str]                   # photo of each evaluated image
    theory: dict                        # ``theory_check`` of the headline design
    ridge: pd.DataFrame                 # the ridge ablation on the fitting photos
    missing: dict[str, str] = field(default_factory=dict)   # metric -> why it was not computed
    description: str = ""
    decodings: pd.DataFrame = field(default_factory=pd.DataFrame)   # residual − direct, paired (``decoding_gaps``)


def _batched(function, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([function(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, images.shape[0], batch_size)])


def latent_stats(latents: torch.Tensor, patch_size: int) -> list[GaussianStats]:
    """One :class:`GaussianStats` of the valid p×p patches per latent of ``[N, C, h, w]``."""
    return [valid_patch_stats(latent[None], patch_size) for latent in latents]


def _merged(stats: Sequence[GaussianStats], indices: Sequence[int]) -> GaussianStats:
    total = GaussianStats(stats[0].dim, stats[0].device)
    for index in indices:
        total.merge(stats[index])
    return total


def pixel_w2_per_dim(images_a: torch.Tensor, images_b: torch.Tensor, patch_size: int = 5, stride: int = 2) -> float:
    """Squared W2 between the Gaussians of the p×p pixel patches of two sets, per dimension.

    The theory predicts ``E||x - x̂0||² - E||x - x*||² = W2²(p_x*, p_x)``; divided by the
    patch dimension ``3 p²`` it is comparable with a per-pixel MSE increase. Patches are
    taken every ``stride`` pixels, image by image (bounded memory).
    """
    dim = 3 * patch_size ** 2
    stats = []
    for images in (images_a, images_b):
        total = GaussianStats(dim)
        for image in images:
            total.update(F.unfold(image[None].double(), patch_size, stride=stride)[0].T)
        stats.append(total)
    a, b = stats
    return w2(a.mean, a.cov, b.mean, b.cov) / dim


def theory_check(x: torch.Tensor, x_star: torch.Tensor, x_hat0: torch.Tensor, round_trip_star: torch.Tensor,
                 lowpass_sigma: float = 8.0, w2_dim: float | None = None) -> dict:
    """The PSNR cost of x̂0 against the theory, and where its extra error comes from.

    Theory (MMSE restorer): MSE(x̂0) = D* + W2²(p_x*, p_x) <= 2 D*, a PSNR cost of at most
    3.01 dB; the pixel-patch W2² between x* and x predicts it (``predicted_cost_db``). The
    excess error MSE(x̂0) - MSE(x*) is compared with the VAE's own error on x*
    (``vae_share``: MSE(D(E(x*)), x*) / excess) and split into its low-pass part
    (``lowpass_share``: energy of x̂0 - x* below a Gaussian blur of ``lowpass_sigma`` px,
    i.e. colour and brightness shifts). ``reason`` names the dominant one when the bound is
    exceeded. ``w2_dim``: :func:`pixel_w2_per_dim` of (x*, x) when already computed.
    """
    mse_star = (x_star.double() - x.double()).square().mean().item()
    mse_zero = (x_hat0.double() - x.double()).square().mean().item()
    cost = 10.0 * math.log10(mse_zero / mse_star)
    w2_dim = pixel_w2_per_dim(x_star, x) if w2_dim is None else w2_dim
    predicted = 10.0 * math.log10((mse_star + w2_dim) / mse_star)
    change = (x_hat0 - x_star).double()
    radius = int(3 * lowpass_sigma)
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / lowpass_sigma) ** 2)
    kernel = kernel / kernel.sum()
    flat = change.reshape(-1, 1, *change.shape[-2:])
    low = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    low = F.conv2d(F.pad(low, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    lowpass_share = low.square().sum().item() / max(change.square().sum().item(), 1e-30)
    excess = mse_zero - mse_star
    vae_mse = (round_trip_star.double() - x_star.double()).square().mean().item()
    vae_share = vae_mse / excess if excess > 0 else float("nan")
    exceeds = cost > THEORY_BOUND_DB
    reason = ""
    if exceeds:
        if vae_share >= 0.5:
            reason = f"VAE reconstruction error: MSE(D(E(x*)), x*) is {100 * vae_share:.0f} % of the excess"
        elif lowpass_share >= 0.5:
            reason = f"colour/brightness shift: {100 * lowpass_share:.0f} % of x̂0 - x* is low-pass"
        else:
            reason = (f"detail beyond the fitted W2: VAE {100 * vae_share:.0f} %, low-pass "
                      f"{100 * lowpass_share:.0f} % of the change")
    return {"mse_x_star": mse_star, "mse_x_hat0": mse_zero, "psnr_cost_db": cost,
            "bound_db": THEORY_BOUND_DB, "predicted_cost_db": predicted, "pixel_w2_per_dim": w2_dim,
            "vae_mse": vae_mse, "vae_share": vae_share, "lowpass_share": lowpass_share,
            "exceeds_bound": exceeds, "reason": reason}


def _ridge_ablation(vae: Encoder, design: Design, stats_clean, stats_star, z_star: torch.Tensor,
                    x_star: torch.Tensor, patch_size: int, split: str, n_measured: int = 8) -> pd.DataFrame:
    """PSNR cost and detail change of x̂0 on the FITTING images of fold 0 (in-sample), per ridge.

    The operators are fitted on all fitting images; x̂0 is measured on the first ``n_measured``
    source images (the cost is decoding), against their clean versions (the authors' ``same``
    design: those are the target images themselves).
    """
    target_idx, source_idx = design.folds[0][1][split]
    measured = source_idx[:n_measured]
    clean, restored = design.images[measured], x_star[measured]
    detail = DetailFrechet(clean)
    psnr = lambda a, b: float(psnr_of_mse(mse(a, b).double().mean()))  # noqa: E731   the pooled PSNR of one crop size
    base_psnr, base_detail = psnr(restored, clean), detail(restored)
    source, target = _merged(stats_star, source_idx), _merged(stats_clean, target_idx)
    rows = []
    for name, ridge, eps in RIDGE_SETTINGS:
        operator = LatentOT.from_stats(vae, source, target, patch_size=patch_size, eps=eps, ridge=ridge)
        moved = operator.apply(restored, {"direct": [0.0]}, latents=z_star[measured])["direct"][0]
        rows.append({"ridge": name, "psnr_cost_db": base_psnr - psnr(moved, clean),
                     "detail_x_star": base_detail, "detail_x_hat0": detail(moved),
                     "degenerate": operator.operator.noise_root is not None})
    return pd.DataFrame(rows)


def run_task(
    task: str,
    restorer: str = "mse_net",
    encoder: str = "embedded",
    data: str = "embedded",
    fit_split: str = "same",
    ablation_splits: Sequence[str] = ("matched", "disjoint"),
    decodes: Sequence[str] = DECODES,
    size: int = 256,
    n_fit: int = 16,
    crops_per_photo: int = 2,
    n_folds: int = 6,
    alphas: Sequence[float] | None = None,
    secondary_alphas: Sequence[float] | None = None,
    seed: int = 0,
    device: str = "cpu",
    patch_size: int = 5,
    eps: float | None = None,
    ridge: str = "relative",
    batch_size: int = 4,
    restorer_checkpoint: str | None = None,
    n_resamples: int = 2000,
    inception: bool = True,
    lpips: bool = True,
) -> TaskRun:
    """Run one task end to end and measure every signal against the clean images.

    Returns a :class:`TaskRun` whose table has one row per signal with columns task,
    restorer, encoder, fit_split, decode, signal, alpha, n_photos, n_crops, the metrics
    (psnr, ssim, mse, lpips, swd, detail, fid, kid, is; ``_sd`` = bootstrap std over
    photos, KID over subsets, IS over splits), ``latent_w2`` (squared W2 of the signal's
    latent patch Gaussian to the natural one of all evaluated images: what DOT minimises)
    and, for every paired metric m, ``d_m``, ``d_m_lo``, ``d_m_hi``: the signal minus
    ``x_star`` with its 95 % paired bootstrap interval over photos.

    ``fit_split`` (default ``same``, the authors' design) gets the α sweep ``alphas`` for the
    first decoding of ``decodes`` and ``secondary_alphas`` (default: the same) for the others;
    each of ``ablation_splits`` is measured at α = 0, and α = 0 is added to any sweep that lacks it
    (x̂0 is what the theory check reads). Every photo of the pool is evaluated.
    ``data`` must be ``"embedded"`` (image folders: :func:`dotlib.runner.run_folder_task`). ``eps``
    None: the default of ``ridge`` (1e-9 relative; ``eps=1e-7, ridge="absolute"`` is the
    authors' setting).
    """
    alphas = default_alphas() if alphas is None else alphas
    splits = fitted_designs(fit_split, ablation_splits, FIT_SPLITS)
    decodes = check_decodes(decodes)
    _check_pool_inputs(task, restorer, data)
    options = {} if restorer_checkpoint is None else {"checkpoint": restorer_checkpoint}
    pool = _restore_and_encode(task, get_restorer(restorer, task, device=device, **options),
                               load_encoder(encoder, device=device), design_for_pool(size, crops_per_photo, n_folds,
                                                                                     n_fit, splits, seed),
                               torch.device(device), seed, patch_size, batch_size, f"{task} / {restorer}")
    plan = {key: sweep if 0.0 in sweep else [*sweep, 0.0]   # every x̂0 too: the theory check and headline read it
            for key, sweep in alpha_sweeps(splits, decodes, alphas, secondary_alphas).items()}
    x_alpha, round_trip_star, latent_w2_fitted = _transport_folds(
        pool, splits, plan, f"{task} / {restorer}", dict(patch_size=patch_size, eps=eps, ridge=ridge,
                                                         batch_size=batch_size))
    signals = _signals(pool, x_alpha, plan)
    features, classifier, lpips_model, missing = perception_models(pool.device, inception, lpips)
    bootstrap = PairedBootstrap(pool.evaluated_images("x"), pool.photos, baseline="x_star", n_resamples=n_resamples,
                                seed=seed, lpips=lpips_model, batch_size=batch_size * 4, device=pool.device)
    rows = _measure(pool, signals, bootstrap, features, classifier, (fit_split, decodes[0]),
                    {"task": task, "restorer": restorer, "encoder": encoder}, f"{task} / {restorer}")
    decodings = decoding_gaps(bootstrap, rows, decodes).assign(task=task, restorer=restorer)
    table = _task_table(rows, bootstrap.compute(), latent_w2_fitted)
    headline = {decode: x_alpha[(fit_split, decode)][plan[(fit_split, decode)].index(0.0)].clone()
                for decode in decodes}
    theory, ridge_table = _checks(pool, table, headline, round_trip_star, fit_split, f"{task} / {restorer}")
    images = {"x": pool.evaluated_images("x"), "y": pool.y[pool.evaluated], "x_star": pool.evaluated_images("x_star"),
              "xe": signals[1][1],
              "x_hat0": headline[decodes[0]], **{f"x_hat0_{decode}": image for decode, image in headline.items()}}
    return TaskRun(table=table, images=images, photos=pool.photos, theory=theory, ridge=ridge_table,
                   missing=missing, description=pool.design.description, decodings=decodings)


def _checks(pool: "_Pool", table: pd.DataFrame, headline: dict[str, torch.Tensor], round_trip_star: torch.Tensor,
            fit_split: str, name: str) -> tuple[dict, pd.DataFrame]:
    """The theory check of each decoding's x̂0 (with its cost interval from ``table``) and the ridge ablation."""
    with progress(total=2, desc=f"{name}: theory check and ridge ablation", unit="check") as bar:
        x, star = pool.evaluated_images("x"), pool.evaluated_images("x_star")
        w2_dim = pixel_w2_per_dim(star, x)
        theory = {decode: {**theory_check(x, star, image, round_trip_star, w2_dim=w2_dim),
                           **_cost_interval(table, fit_split, decode)} for decode, image in headline.items()}
        bar.update()
        ridge = _ridge_ablation(pool.vae, pool.design, pool.stats_clean, pool.stats_star, pool.z_star, pool.x_star,
                                pool.patch_size, fit_split)
        bar.update()
    return theory, ridge


def _task_table(rows: list[tuple[str, dict]], measured: dict[str, dict[str, float]],
                latent_w2_fitted: dict[str, list[float]]) -> pd.DataFrame:
    """One row per measured signal: its labels, set-level row, and the bootstrap's values,
    spreads and paired differences to x* (``measured``, :meth:`PairedBootstrap.compute`)."""
    table = ordered_table(pd.DataFrame([{**row, **measured[key]} for key, row in rows]))
    fitted = table.fit_split.map({split: float(np.mean(values)) for split, values in latent_w2_fitted.items()})
    table["latent_w2_fitted"] = np.where(table.signal.eq("x_alpha"), fitted, np.nan)
    return table


def per_crop_psnr(run: TaskRun) -> pd.DataFrame:
    """Per evaluated crop: ``photo``, ``crop`` and the PSNR (dB) against x of x* (``psnr_x_star``),
    of D(E(x)), the VAE's reconstruction floor (``psnr_xe``), and of each decoding's x̂0
    (``psnr_x_hat0_<decode>``)."""
    psnr, clean = per_image_functions()["psnr_mean"], run.images["x"]
    keys = ["x_star", "xe", *sorted(key for key in run.images if key.startswith("x_hat0_"))]
    return pd.DataFrame({"photo": run.photos, "crop": range(clean.shape[0]),
                         **{f"psnr_{key}": psnr(run.images[key], clean).double().numpy() for key in keys}})


def x_hat0_row(table: pd.DataFrame, fit_split: str, decode: str) -> pd.Series:
    """The x̂0 (α = 0) row of one design and decoding in a study table; ``ValueError`` if none."""
    rows = table[table.signal.eq("x_alpha") & table.fit_split.eq(fit_split) & table.decode.eq(decode)
                 & np.isclose(table.alpha.fillna(-99.0), 0.0)]
    if rows.empty:
        raise ValueError(f"the table has no x̂0 row for fit_split={fit_split!r}, decode={decode!r}")
    return rows.iloc[0]


def _cost_interval(table: pd.DataFrame, fit_split: str, decode: str) -> dict[str, float]:
    """The paired 95 % interval of x̂0's pooled PSNR cost (``-d_psnr``): ``psnr_cost_lo``, ``psnr_cost_hi``."""
    row = x_hat0_row(table, fit_split, decode)
    return {"psnr_cost_lo": -float(row.d_psnr_hi), "psnr_cost_hi": -float(row.d_psnr_lo)}


def decoding_gaps(bootstrap: PairedBootstrap, rows: list[tuple[str, dict]], decodes: Sequence[str]) -> pd.DataFrame:
    """Each other decoding minus the first (residual − direct), paired over photos, per design and
    α measured with intervals in both: columns fit_split, decode, alpha and ``d_m``, ``d_m_lo``,
    ``d_m_hi``, ``d_m_lo_rep``, ``d_m_hi_rep`` for every paired metric m."""
    keys = {(row["fit_split"], row["decode"], row["alpha"]): key for key, row in rows if row["signal"] == "x_alpha"}
    out = []
    for (split, decode, alpha), key in keys.items():
        baseline = keys.get((split, decodes[0], alpha))
        if decode != decodes[0] and baseline is not None and any(math.isclose(alpha, a) for a in TABLE_ALPHAS):
            out.append({"fit_split": split, "decode": decode, "alpha": alpha,
                        **bootstrap.difference(key, baseline)})
    return pd.DataFrame(out)


def _check_pool_inputs(task: str, restorer: str, data: str) -> None:
    """Clear errors before anything loads: an unknown task, an image folder, a folder restorer."""
    get_degradation(task)
    if data != "embedded":
        raise ValueError(f"run_task evaluates the embedded photo pool (data='embedded'); an image folder "
                         f"({data!r}) is streamed by dotlib.runner.run_folder_task (notebook 03 picks it)")
    if restorer.startswith("folder:"):
        raise ValueError("a folder restorer is matched to its inputs by file name, and the embedded pool's crops "
                         "have none: give the folder of clean images as data (dotlib.runner.run_folder_task; "
                         "notebook 03 does it for data=<folder>)")


@dataclass
class _Pool:
    """The photo pool of one task, restored and encoded once: latents serve the statistics AND the transport."""

    design: Design
    vae: Encoder
    device: torch.device
    seed: int
    patch_size: int
    batch_size: int
    y: torch.Tensor                     # degraded inputs, every crop
    x_star: torch.Tensor                # restorations, every crop (CPU)
    z_clean: torch.Tensor               # latents of the clean crops
    z_star: torch.Tensor                # latents of the restorations
    stats_clean: list[GaussianStats]    # valid-patch statistics, one per crop
    stats_star: list[GaussianStats]

    @property
    def evaluated(self) -> list[int]:
        return self.design.evaluated

    @property
    def photos(self) -> list[str]:
        return [self.design.photos[i] for i in self.evaluated]

    def evaluated_images(self, which: str) -> torch.Tensor:
        """The evaluated crops of ``"x"`` (clean) or ``"x_star"``, in evaluation order."""
        return (self.design.images if which == "x" else self.x_star)[self.evaluated]


def _restore_and_encode(task: str, model, vae: Encoder, design: Design, device: torch.device, seed: int,
                        patch_size: int, batch_size: int, name: str) -> _Pool:
    """Degrade, restore and encode every crop of the pool once."""
    with progress(total=3, desc=f"{name}: restore x*, encode x and x* ({len(design.images)} crops)",
                  unit="phase") as bar:
        y = degrade(task, design.images, seed=seed + 20)
        x_star = _batched(model, y, batch_size, device).clamp(0.0, 1.0)
        bar.update()
        z_clean = _batched(vae.encode, design.images, batch_size, device)
        bar.update()
        z_star = _batched(vae.encode, x_star, batch_size, device)
        bar.update()
    return _Pool(design, vae, device, seed, patch_size, batch_size, y, x_star, z_clean, z_star,
                 latent_stats(z_clean, patch_size), latent_stats(z_star, patch_size))


def _transport_folds(pool: _Pool, splits: Sequence[str], plan: dict[tuple[str, str], list[float]], name: str,
                     operator_options: dict) -> tuple[dict, torch.Tensor, dict[str, list[float]]]:
    """x̂α ``[len(α), N, 3, H, W]`` of the N evaluated crops per (design, decoding) for the α of
    ``plan``, each fold moved by operators fitted on the other folds' photos; also D(E(x*))
    through the same arithmetic ``[N, 3, H, W]``, and each fold's fitted W2."""
    position = {index: rank for rank, index in enumerate(pool.evaluated)}
    shape = (len(pool.evaluated), *pool.design.images.shape[1:])
    x_alpha = {key: torch.empty(len(alphas), *shape) for key, alphas in plan.items()}
    latent_w2_fitted: dict[str, list[float]] = {split: [] for split in splits}
    round_trip_star = torch.empty(shape)   # D(E(x*)), for the theory check
    for held_out, sets in progress(pool.design.folds, desc=f"{name}: transport", unit="fold", mininterval=5):
        operators = {}
        for split in splits:
            target_idx, source_idx = sets[split]
            operators[split] = LatentOT.from_stats(pool.vae, _merged(pool.stats_star, source_idx),
                                                   _merged(pool.stats_clean, target_idx), **operator_options)
            latent_w2_fitted[split].append(operators[split].latent_w2)
        for start in range(0, len(held_out), pool.batch_size):   # a fresh noise generator per batch
            chunk = held_out[start:start + pool.batch_size]
            _transport_batch(pool, operators, plan, chunk, [position[i] for i in chunk], x_alpha, round_trip_star)
    return x_alpha, round_trip_star, latent_w2_fitted


def _transport_batch(pool: _Pool, operators: dict[str, LatentOT], plan: dict, chunk: list[int], rows: list[int],
                     x_alpha: dict, round_trip_star: torch.Tensor) -> None:
    """Fill ``rows`` of ``x_alpha`` and ``round_trip_star`` with crops ``chunk`` moved by every design's
    operator; D(T_1(z)) of the first design's operator, i.e. D(E(x*)) through the same
    arithmetic, is every design's reference of the residual decoding (decoded once per batch)."""
    z, star = pool.z_star[chunk], pool.x_star[chunk]
    first = next(iter(operators.values()))
    reference = first.apply(star, {"direct": [1.0]}, latents=z, mode="latent")["direct"][0]
    round_trip_star[rows] = reference
    for split, operator in operators.items():
        sweeps = {decode: alphas for (fitted, decode), alphas in plan.items() if fitted == split}
        for decode, images in operator.apply(star, sweeps, latents=z, reference=reference).items():
            x_alpha[(split, decode)][:, rows] = images


def _signals(pool: _Pool, x_alpha: dict, sweeps: dict) -> list[tuple[dict, torch.Tensor]]:
    """``(labels, images)`` of every measured signal: x, xe = D(E(x)), y, x* and each x̂α of ``sweeps``
    (``x_alpha[key][i]`` is the i-th α of ``sweeps[key]``)."""
    x, star, evaluated = pool.evaluated_images("x"), pool.evaluated_images("x_star"), pool.evaluated
    xe = _batched(lambda z: pool.vae.decode(z, tuple(x.shape[-2:])), pool.z_clean[evaluated], pool.batch_size,
                  pool.device)
    signals = [({"signal": "x"}, x), ({"signal": "xe"}, xe),
               ({"signal": "y"}, upsampled(pool.y[evaluated], tuple(x.shape[-2:]))), ({"signal": "x_star"}, star)]
    for (split, decode), sweep in sweeps.items():
        for index, alpha in enumerate(sweep):
            signals.append(({"signal": "x_alpha", "fit_split": split, "decode": decode, "alpha": alpha},
                            x_alpha[(split, decode)][index]))
    return signals


def _measure(pool: _Pool, signals: list, bootstrap: PairedBootstrap, features, classifier,
             headline: tuple[str, str], labels: dict, name: str) -> list[tuple[str, dict]]:
    """Measure every signal with ``bootstrap``; its set-level row (FID, KID, IS where the models are
    on disk, the latent W2 of x, x* and the headline x̂0). Returns ``(key, row)`` per signal."""
    clean = pool.evaluated_images("x")
    reference_features = None if features is None else features(clean)
    natural = _merged(pool.stats_clean, pool.evaluated)
    rows = []
    for index, (signal, images) in enumerate(progress(signals, desc=f"{name}: measuring", unit="signal",
                                                      mininterval=5)):
        alpha = signal.get("alpha", math.nan)
        full = signal["signal"] != "x_alpha" or any(math.isclose(alpha, a) for a in TABLE_ALPHAS)
        key = signal["signal"] if signal["signal"] != "x_alpha" else f"{index}"
        bootstrap.update(clean, {key: images}, ssim=full, intervals=full)
        row = {**labels, "fit_split": "", "decode": "", "alpha": math.nan, **signal}
        if features is not None:
            row.update(_inception_metrics(features(images), reference_features, classifier, pool.seed))
        row["latent_w2"] = math.nan
        is_x_hat0 = (signal.get("fit_split"), signal.get("decode")) == headline and alpha == 0.0
        if signal["signal"] in ("x", "x_star") or is_x_hat0:   # one encoding of the set each
            z = pool.z_clean[pool.evaluated] if signal["signal"] == "x" else pool.z_star[pool.evaluated] \
                if signal["signal"] == "x_star" else _batched(pool.vae.encode, images, pool.batch_size, pool.device)
            stats = _merged(latent_stats(z, pool.patch_size), range(z.shape[0]))
            row["latent_w2"] = w2(stats.mean, stats.cov, natural.mean, natural.cov)
        rows.append((key, row))
    return rows


def _inception_metrics(feats, reference_features, classifier: torch.Tensor, seed: int) -> dict[str, float]:
    """FID, KID (and its sd) and IS (and its sd) of one set's Inception features."""
    row = {"fid": fid(feats, reference_features)}
    row["kid"], row["kid_sd"] = kid(feats, reference_features, seed=seed)
    probabilities = torch.softmax(torch.from_numpy(feats) @ classifier.double().T, dim=1).numpy()
    row["is"], row["is_sd"] = inception_score(probabilities, min(10, feats.shape[0]))
    return row


# ---------------------------------------------------------------------------- findings


def describe_finding(table: pd.DataFrame, fit_split: str = "same", decode: str = "direct") -> str:
    """State in words, from the paired intervals, what x̂0 does against x* on this run.

    The claim (Adrai et al. 2023): x̂0 is closer to natural images than x* on perceptual
    indices, at a PSNR cost, and the α sweep trades one for the other.
    """
    row = x_hat0_row(table, fit_split, decode)
    counted = "photos" if row.n_crops != row.n_photos else "images"   # streamed folder runs: images
    lines = [f"x̂0 ({fit_split} images, {decode} decoding) against x*, {int(row.n_photos)} {counted}, "
             f"95 % paired intervals:"]
    for entry in map(metric, ("psnr", "swd", "detail")):
        scale, key = entry.scale, entry.key
        value, low, high = row[f"d_{key}"], row[f"d_{key}_lo"], row[f"d_{key}_hi"]
        bounds = (f"[{low * scale:+.3g}, {high * scale:+.3g}]" if math.isfinite(low) and math.isfinite(high)
                  else "(set-level index: no interval)")
        lines.append(f"  {key}: {value * scale:+.3g} {entry.difference_unit} {bounds} -> "
                     f"{verdict(low, high, not entry.higher_is_better)}")
    return "\n".join(lines)
