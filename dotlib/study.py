"""The study runner: degrade, restore, fit DOT few-shot and unpaired, transport, sweep α, measure.

``run_task`` is one row of the paper's table: for a task (degradation) and a restorer
it returns the metrics of every signal — the clean images ``x``, their VAE round trip
``xe`` = D(E(x)) (the bound of any latent method), the degraded input ``y`` (upsampled),
the restorer's output ``x_star`` and the DOT outputs ``x_alpha`` of eq. (2) for each α.
Images come in three disjoint sets (see ``image_sets``): target statistics (natural
images), source statistics (restorations of OTHER images: unpaired) and evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import metrics
from .data import ImageFolder, embedded_crops, matched_crops
from .degradations import degrade, get_degradation
from .gaussian import GaussianStats, w2
from .encoders import Encoder, load_encoder
from .latent_ot import LatentOT
from .patches import extract_patches
from .restorers import get_restorer
from .tables import signal_row

__all__ = [
    "ImageSets", "TaskRun", "default_alphas", "describe_finding", "fewshot_ablation", "fit_operator",
    "image_sets", "pixel_w2_per_dim", "run_task",
]


def default_alphas(start: float = -1.0, stop: float = 2.0, step: float = 0.1) -> list[float]:
    """α from ``start`` to ``stop`` inclusive, rounded to 10 decimals (-1.0, -0.9, ..., 2.0)."""
    count = int(round((stop - start) / step)) + 1
    return [round(start + index * step, 10) for index in range(count)]


@dataclass
class ImageSets:
    """Three disjoint image batches ``[N, 3, size, size]`` in [0, 1]."""

    target: torch.Tensor
    source: torch.Tensor
    evaluation: torch.Tensor
    description: str


#: How the embedded study picks its unpaired fitting sets (see ``image_sets``).
FIT_SPLITS = ("matched", "disjoint")


def image_sets(data: str, size: int, n_fit: int, n_eval: int, seed: int,
               fit_split: str = "matched") -> ImageSets:
    """Target / source / evaluation images, ``[n, 3, size, size]`` each.

    ``data="embedded"``: evaluation crops come from the ``eval`` photos. The fitting sets
    come from the ``target`` and ``source`` photos: with ``fit_split="matched"`` (default)
    target crops from one half of each of these photos and source crops from the other
    half (same scenes, no shared pixel, see ``dotlib.data.matched_crops``); with
    ``"disjoint"`` target crops from the ``target`` photos and source crops from the
    ``source`` photos (the content differs: on so few photos DOT then moves colours, see
    ``fewshot_ablation``). Otherwise ``data`` is an image folder (ImageNet validation,
    DIV2K, ...): images are shuffled by ``seed`` and cut into three disjoint groups, each
    image resized (short side ``size``) and centre-cropped; ``fit_split`` is unused there.
    """
    if fit_split not in FIT_SPLITS:
        raise ValueError(f"unknown fit_split {fit_split!r}; known: {', '.join(FIT_SPLITS)}")
    if data == "embedded":
        evaluation = embedded_crops("eval", size, n_eval, seed + 2)
        if fit_split == "matched":
            return ImageSets(
                target=matched_crops(("target", "source"), 0, size, n_fit, seed),
                source=matched_crops(("target", "source"), 1, size, n_fit, seed + 1),
                evaluation=evaluation,
                description="embedded photos: fitting halves of the target+source photos, eval photos apart",
            )
        return ImageSets(
            target=embedded_crops("target", size, n_fit, seed),
            source=embedded_crops("source", size, n_fit, seed + 1),
            evaluation=evaluation,
            description="embedded photos (target, source and eval photos disjoint)",
        )
    folder = ImageFolder(data, resize=size, crop=size)
    needed = 2 * n_fit + n_eval
    if len(folder) < needed:
        raise ValueError(f"{data} holds {len(folder)} images; {needed} are needed "
                         f"({n_fit} target + {n_fit} source + {n_eval} evaluation)")
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()
    take = lambda indices: torch.stack([folder[i] for i in indices])  # noqa: E731
    return ImageSets(
        target=take(order[:n_fit]),
        source=take(order[n_fit:2 * n_fit]),
        evaluation=take(order[2 * n_fit:needed]),
        description=f"{data} (disjoint images, shuffled with seed {seed})",
    )


@dataclass
class TaskRun:
    """What ``run_task`` measured, with the images kept for collages."""

    table: pd.DataFrame
    images: dict[str, torch.Tensor]  # x, y, x_star, x_hat0, xe: [n_eval, 3, H, W] on CPU
    operator: LatentOT
    missing: dict[str, str]          # metric -> why it could not be computed


def _batched(function, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    outputs = [function(images[i:i + batch_size].to(device)).cpu()
               for i in range(0, images.shape[0], batch_size)]
    return torch.cat(outputs)


def _upsample(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(y.shape[-2:]) == tuple(size):
        return y.clamp(0.0, 1.0)
    return torch.nn.functional.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def _latent_stats(operator: LatentOT, images: torch.Tensor) -> GaussianStats:
    """Gaussian of the valid latent patches of ``images`` (the fitted objective's space)."""
    return GaussianStats(operator.dim).update(operator.patch_features(images))


def fit_operator(task: str, restorer, target: torch.Tensor, source_clean: torch.Tensor,
                 encoder: Encoder, patch_size: int, eps: float, noise_seed: int,
                 batch_size: int) -> LatentOT:
    """Fit DOT: target = natural images, source = restorations of ``source_clean`` (unpaired)."""
    degraded = degrade(task, source_clean, seed=noise_seed)
    source = _batched(restorer, degraded, batch_size, encoder.device).clamp(0.0, 1.0)
    operator = LatentOT(encoder=encoder, patch_size=patch_size, eps=eps, batch_size=batch_size)
    operator.update(target, which="target").update(source, which="source")
    operator.fit()
    return operator


def run_task(
    task: str,
    restorer: str = "mse_net",
    encoder: str = "embedded",
    data: str = "embedded",
    fit_split: str = "matched",
    size: int = 256,
    n_fit: int = 16,
    n_eval: int = 8,
    alphas: Sequence[float] | None = None,
    seed: int = 0,
    device: str = "cpu",
    patch_size: int = 5,
    eps: float = 1e-7,
    batch_size: int = 4,
    restorer_checkpoint: str | None = None,
    operator_cache: str | Path | None = "results/operators",
    inception: bool = True,
    lpips: bool = True,
    latent_w2_alphas: Sequence[float] = (0.0, 0.5),
) -> TaskRun:
    """Run one task end to end and measure every signal against the clean images.

    Returns a ``TaskRun`` whose table has one row per signal (columns: task, restorer,
    encoder, signal, alpha, n_images, latent_w2 and ``dotlib.metrics.STUDY_COLUMNS``).
    Distortions are means ± standard deviations over images; perceptual indices compare
    the set of outputs with the clean evaluation images (as FID is reported in the
    paper). FID/KID/IS (``inception``) and LPIPS (``lpips``) are computed when their
    weights are on disk, else recorded NaN with the reason in ``TaskRun.missing``.
    ``latent_w2`` is the squared W2 between the Gaussian of the signal's latent
    patches and the fitted target Gaussian: the objective DOT minimises. Measuring it
    costs one encoding of the whole set, so for ``x_alpha`` it is computed only at
    ``latent_w2_alphas`` and is NaN at the other α.
    """
    alphas = default_alphas() if alphas is None else [float(a) for a in alphas]
    device_ = torch.device(device)
    get_degradation(task)  # unknown task: clear error before anything loads
    sets = image_sets(data, size, n_fit, n_eval, seed, fit_split)
    options = {} if restorer_checkpoint is None else {"checkpoint": restorer_checkpoint}
    model = get_restorer(restorer, task, device=device, **options)
    vae = load_encoder(encoder, device=device)
    progress = tqdm(total=4, desc=f"{task} / {restorer}", mininterval=5)

    progress.set_postfix_str("fit")
    settings = dict(task=task, restorer=restorer, checkpoint=restorer_checkpoint, encoder=encoder,
                    weights=vae.fingerprint, data=data, fit_split=fit_split, size=size, n_fit=n_fit, seed=seed,
                    patch_size=patch_size, eps=eps)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    cache = None if operator_cache is None else Path(operator_cache) / f"{task}__{restorer}__{key}.safetensors"
    if cache is not None and cache.is_file():
        operator = LatentOT.load(cache, encoder=vae, batch_size=batch_size)
    else:
        operator = fit_operator(task, model, sets.target, sets.source, vae, patch_size, eps,
                                noise_seed=seed + 10, batch_size=batch_size)
        if cache is not None:
            operator.save(cache)
    progress.update()

    progress.set_postfix_str("restore and transport")
    y = degrade(task, sets.evaluation, seed=seed + 20)
    x_star = _batched(model, y, batch_size, device_).clamp(0.0, 1.0)
    swept = operator.sweep(x_star.to(device_), alphas).cpu()
    x_hat0 = swept[alphas.index(0.0)] if 0.0 in alphas else operator.transport(x_star.to(device_)).cpu()
    xe = _batched(vae.round_trip, sets.evaluation, batch_size, device_)
    progress.update()

    progress.set_postfix_str("measure")
    signals: list[tuple[str, float, torch.Tensor]] = [
        ("x", math.nan, sets.evaluation),
        ("xe", math.nan, xe),
        ("y", math.nan, _upsample(y, tuple(sets.evaluation.shape[-2:]))),
        ("x_star", math.nan, x_star),
    ]
    signals += [("x_alpha", alpha, swept[index]) for index, alpha in enumerate(alphas)]
    evaluator = metrics.Evaluator(sets.evaluation, device=device, seed=seed, n_bootstrap=20,
                                  features="inception" if inception else None,
                                  probabilities="inception" if inception else None,
                                  lpips="vgg" if lpips else None)
    progress.update()
    rows = []
    for signal, alpha, images in tqdm(signals, desc="measuring", mininterval=5, leave=False):
        report = evaluator(images, clean=sets.evaluation)
        row = {"task": task, "restorer": restorer, "encoder": encoder, "signal": signal,
               "alpha": alpha, "n_images": images.shape[0], **report.row(), "latent_w2": math.nan}
        if signal != "x_alpha" or any(math.isclose(alpha, a) for a in latent_w2_alphas):
            stats = _latent_stats(operator, images)
            row["latent_w2"] = w2(stats.mean, stats.cov, operator.target.mean, operator.target.cov)
        rows.append(row)
    progress.update()
    progress.close()
    images = {"x": sets.evaluation, "y": y, "x_star": x_star, "x_hat0": x_hat0, "xe": xe}
    return TaskRun(table=pd.DataFrame(rows), images=images, operator=operator,
                   missing=dict(evaluator.missing))


def describe_finding(table: pd.DataFrame, perceptual: str = "swd") -> str:
    """State in words, with numbers, whether DOT's claim holds on this run.

    The claim (Adrai et al. 2023): x̂0 is closer to natural images than x* on the
    perceptual index, at a PSNR cost, and the α sweep trades one for the other.
    """
    star, zero = signal_row(table, "x_star"), signal_row(table, "x_alpha", 0.0)
    better = zero[perceptual] < star[perceptual]
    cost = star.psnr - zero.psnr
    lines = [
        f"{perceptual} (lower = closer to natural images): x* {star[perceptual]:.4g} -> x̂0 "
        f"{zero[perceptual]:.4g} ({'better' if better else 'NOT better'}).",
        f"PSNR: x* {star.psnr:.2f} dB -> x̂0 {zero.psnr:.2f} dB "
        f"({'a cost of' if cost >= 0 else 'a gain of'} {abs(cost):.2f} dB).",
    ]
    sweep = table[table.signal.eq("x_alpha") & table.alpha.between(0.0, 1.0)].sort_values("alpha")
    if len(sweep) >= 3:
        def trend(values: np.ndarray) -> str:
            steps = np.diff(values)
            if np.all(steps >= -1e-12):
                return "rises monotonically"
            if np.all(steps <= 1e-12):
                return "falls monotonically"
            return "is not monotone"

        psnr_trend, index_trend = trend(sweep.psnr.to_numpy()), trend(sweep[perceptual].to_numpy())
        traded = psnr_trend.startswith("rises") and index_trend.startswith("rises")
        lines.append(f"alpha 0 -> 1: PSNR {psnr_trend}, {perceptual} {index_trend} "
                     f"({'a trade-off' if traded else 'not a trade-off'}).")
    verdict = "holds" if better and cost > 0 else "does not hold"
    lines.append(f"The paper's finding {verdict} on this run.")
    return "\n".join(lines)


def pixel_w2_per_dim(images_a: torch.Tensor, images_b: torch.Tensor, patch_size: int = 5) -> float:
    """Squared W2 between the Gaussians of the p×p pixel patches of two sets, per dimension.

    The theory predicts ``E||x - x̂0||² - E||x - x*||² = W2²(p_x*, p_x)``; divided by
    the patch dimension ``3 p²`` it is comparable with a per-pixel MSE increase.
    """
    stats = []
    for images in (images_a, images_b):
        patches = extract_patches(images.double(), patch_size).reshape(-1, 3 * patch_size ** 2)
        stats.append(GaussianStats(patches.shape[-1]).update(patches))
    (a, b), dim = stats, 3 * patch_size ** 2
    return w2(a.mean, a.cov, b.mean, b.cov) / dim


def fewshot_ablation(
    task: str,
    restorer: str = "mse_net",
    encoder: str = "embedded",
    size: int = 256,
    n_fits: Sequence[int] = (4, 16, 48),
    n_eval: int = 8,
    seed: int = 0,
    device: str = "cpu",
    patch_size: int = 5,
    eps: float = 1e-7,
    batch_size: int = 4,
) -> pd.DataFrame:
    """How x̂0 moves with the number and the content of the fitting images.

    Two ways to pick the unpaired fitting sets, each at every ``n`` in ``n_fits``:
    ``disjoint``: target crops from the ``target`` photos, source crops from the
    ``source`` photos (content differs: colours, brightness); ``matched``: target and
    source crops from the two halves of the same photos (content alike, no shared pixel).
    Evaluation is always on the ``eval`` photos. Columns: split, n_fit, latent_w2 (fitted),
    psnr_x_star, psnr_x_hat0, psnr_cost, dmse (measured per-pixel MSE increase of x̂0),
    dmse_theory (``pixel_w2_per_dim`` of the evaluation x* vs x: the theory's prediction),
    w2_fit_pixel (the same distance between the two fitting sets), colour_shift (L2 norm
    of the change of per-channel mean from x* to x̂0) and colour_gap_eval (the same norm
    between x* and x), swd_x_star, swd_x_hat0.
    """
    model = get_restorer(restorer, task, device=device)
    vae = load_encoder(encoder, device=device)
    evaluation = embedded_crops("eval", size, n_eval, seed + 2)
    x_star = _batched(model, degrade(task, evaluation, seed=seed + 20), batch_size, vae.device).clamp(0, 1)
    dmse_theory = pixel_w2_per_dim(x_star, evaluation)
    mse_star = metrics.mse(x_star, evaluation).double().mean().item()
    swd_star, _ = metrics.perceptual_index("swd", x_star, evaluation, seed=seed)
    channel_mean = lambda images: images.double().mean(dim=(0, 2, 3))  # noqa: E731
    rows = []
    configurations = [(split, n) for split in ("disjoint", "matched") for n in n_fits]
    for split, n in tqdm(configurations, desc=f"few-shot ablation {task}", mininterval=5):
        sets = image_sets("embedded", size, n, 1, seed, fit_split=split)
        target, source_clean = sets.target, sets.source
        operator = fit_operator(task, model, target, source_clean, vae, patch_size, eps,
                                noise_seed=seed + 10, batch_size=batch_size)
        source = _batched(model, degrade(task, source_clean, seed=seed + 10), batch_size, vae.device)
        x_hat0 = operator.transport(x_star.to(vae.device)).cpu()
        mse_zero = metrics.mse(x_hat0, evaluation).double().mean().item()
        swd_zero, _ = metrics.perceptual_index("swd", x_hat0, evaluation, seed=seed)
        rows.append({
            "split": split, "n_fit": n, "latent_w2": operator.latent_w2,
            "psnr_x_star": metrics.psnr(x_star, evaluation).double().mean().item(),
            "psnr_x_hat0": metrics.psnr(x_hat0, evaluation).double().mean().item(),
            "dmse": mse_zero - mse_star, "dmse_theory": dmse_theory,
            "w2_fit_pixel": pixel_w2_per_dim(source.clamp(0, 1), target),
            "colour_shift": (channel_mean(x_hat0) - channel_mean(x_star)).norm().item(),
            "colour_gap_eval": (channel_mean(evaluation) - channel_mean(x_star)).norm().item(),
            "swd_x_star": swd_star, "swd_x_hat0": swd_zero,
        })
    table = pd.DataFrame(rows)
    table["psnr_cost"] = table.psnr_x_star - table.psnr_x_hat0
    return table
