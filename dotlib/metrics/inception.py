"""Inception features through clean-fid's pipeline, and FID, KID, IS on them."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .assets import MetricUnavailable, env_path, resolve
from .inputs import ImageSet, as_list

__all__ = ["CleanFeatures", "FID_MODES", "INCEPTION_ENV", "INCEPTION_FILE", "classifier_weights", "fid",
           "inception_file", "inception_score", "kid", "load_inception"]

#: clean-fid's modes offered here: "clean" (PIL bicubic resize outside the network, Parmar et
#: al. 2022) and "legacy_tensorflow" (the network resizes inside, like the TensorFlow FID
#: code that torch-fidelity and torchmetrics follow: the poster's numbers).
FID_MODES = ("clean", "legacy_tensorflow")

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_ENV = "DOTLIB_INCEPTION_PATH"


def _cleanfid_cache_dir() -> Path:
    """Where clean-fid itself caches (and would download) the Inception torchscript file."""
    return Path("./" if platform.system() == "Windows" else "/tmp")


def inception_file(path: str | Path | None = None) -> Path:
    """The clean-fid Inception weights ``inception-2015-12-05.pt``, found without downloading.

    Order: ``path`` (the file, or a folder holding it), ``$DOTLIB_INCEPTION_PATH`` (same),
    clean-fid's own cache (``/tmp`` on Linux/macOS). Raises :class:`MetricUnavailable`
    naming the file and how to get it.
    """
    from cleanfid.downloads_helper import inception_url

    def as_file(candidate: str | Path) -> Path:
        candidate = Path(candidate).expanduser()
        return candidate / INCEPTION_FILE if candidate.is_dir() else candidate

    how = (f"Download {inception_url} (clean-fid's torchscript Inception) on a connected "
           f"machine and set ${INCEPTION_ENV} to it (or its folder), or copy it to "
           f"{_cleanfid_cache_dir() / INCEPTION_FILE}.")
    explicit = None if path is None else as_file(path)
    env_value = env_path(INCEPTION_ENV)
    found = resolve("fid/kid/is", f"Inception weights {INCEPTION_FILE}", explicit, INCEPTION_ENV,
                     None if env_value is None else as_file(env_value),
                     [_cleanfid_cache_dir() / INCEPTION_FILE], how)
    if found.name != INCEPTION_FILE:
        raise MetricUnavailable("fid/kid/is", f"clean-fid loads the file by its name {INCEPTION_FILE}; "
                                              f"rename {found} or link it under that name.")
    return found


class _InceptionProbabilities(torch.nn.Module):
    """Class probabilities [B, 1008] of the clean-fid Inception: softmax of the bias-free logits."""

    def __init__(self, inception: torch.nn.Module):
        super().__init__()
        output = getattr(inception.base, "output", None)
        weight = getattr(output, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            raise MetricUnavailable("is", "the Inception torchscript has no 'output' linear layer "
                                          "to give class logits")
        self.inception = inception
        self.register_buffer("weight", weight.detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inception(images) @ self.weight.T, dim=1)


def load_inception(device: str | torch.device = "cpu", path: str | Path | None = None,
                   output: str = "features", batch_size: int = 32, mode: str = "clean") -> "CleanFeatures":
    """clean-fid's torchscript Inception as a :class:`CleanFeatures` extractor; never downloads.

    ``output="features"``: the 2048-d pool features of FID/KID; ``"probabilities"``: the
    1008-class softmax used by IS. ``mode``: one of :data:`FID_MODES`. See
    :func:`inception_file` for where weights are looked for.
    """
    if output not in ("features", "probabilities"):
        raise ValueError(f"output must be 'features' or 'probabilities', got {output!r}")
    if mode not in FID_MODES:
        raise ValueError(f"mode must be one of {', '.join(FID_MODES)}, got {mode!r}")
    from cleanfid.inception_torchscript import InceptionV3W

    weights = inception_file(path)
    model = InceptionV3W(str(weights.parent), download=False,
                         resize_inside=mode == "legacy_tensorflow").to(device).eval()
    if output == "probabilities":
        model = _InceptionProbabilities(model).to(device).eval()
    return CleanFeatures(model, name=f"inception_{output}", device=device, batch_size=batch_size, mode=mode)


def classifier_weights(features: "CleanFeatures") -> torch.Tensor:
    """The ``[1008, 2048]`` class head of clean-fid's Inception behind ``features`` (IS from features).

    ``softmax(features @ W.T)`` are the probabilities of ``load_inception(output="probabilities")``.
    """
    return _InceptionProbabilities(features.model).weight


class CleanFeatures:
    """clean-fid's feature pipeline around any model: ``images -> float64 [N, F]``.

    Each image in [0, 1] is quantised to ``uint8`` (as if saved to PNG; ``quantize=False``
    keeps floats, like clean-fid's generator path), resized by
    ``cleanfid.resize.build_resizer(mode)`` (``"clean"``: 299x299 PIL bicubic;
    ``"legacy_tensorflow"``: not at all, the network resizes inside; then the quantisation runs on
    the device, whole batches at once) and batched in [0, 255] through ``model``, as
    ``cleanfid.fid.get_batch_features(batch, model, device)`` does. ``model`` maps
    ``float32 [B, 3, 299, 299]`` in [0, 255] on ``device`` to ``[B, F]``: the Inception of
    :func:`load_inception`, or any injected extractor (tests use a fixed random net).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], name: str,
                 device: str | torch.device = "cpu", batch_size: int = 32, quantize: bool = True,
                 mode: str = "clean"):
        if not callable(model):
            raise TypeError("model must be callable: float32 [B, 3, 299, 299] in [0, 255] -> [B, F]")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if mode not in FID_MODES:
            raise ValueError(f"mode must be one of {', '.join(FID_MODES)}, got {mode!r}")
        from cleanfid.resize import build_resizer

        self.model, self.name, self.mode = model, name, mode
        self.device = torch.device(device)
        self.batch_size, self.quantize = batch_size, quantize
        self._resize = build_resizer(mode)

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        array = image.detach().float().cpu().clamp(0.0, 1.0).permute(1, 2, 0).numpy() * 255.0
        if self.quantize:
            array = np.rint(array).astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(self._resize(array).transpose(2, 0, 1)))

    def _on_device(self, batch: torch.Tensor) -> torch.Tensor:
        """``legacy_tensorflow`` (no resize outside the network): the batch quantised where it lies,
        as :meth:`_prepare` does on the host (float32 ×255, round half to even, uint8), then moved."""
        batch = batch.detach().float().clamp(0.0, 1.0) * 255.0
        return (batch.round().to(torch.uint8) if self.quantize else batch).to(self.device)

    def tensor(self, images: ImageSet) -> torch.Tensor:
        """Features ``float64 [N, F]`` on :attr:`device`, without a trip through the host where the mode
        allows: ``legacy_tensorflow`` quantises whole batches on the device; ``clean`` resizes each
        image with clean-fid's PIL resizer, which only runs on the host."""
        if self.mode == "legacy_tensorflow" and isinstance(images, torch.Tensor) and images.ndim == 4:
            chunks = [images[start:start + self.batch_size] for start in range(0, images.shape[0], self.batch_size)]
            prepared = [self._on_device(chunk) for chunk in chunks]
        else:
            items = as_list(images, "images")
            prepared = [torch.stack([self._prepare(im) for im in items[start:start + self.batch_size]]).to(self.device)
                        for start in range(0, len(items), self.batch_size)]
        with torch.no_grad():   # clean-fid's get_batch_features, without its .cpu().numpy()
            return torch.cat([self.model(batch) for batch in prepared]).to(torch.float64)

    def __call__(self, images: ImageSet) -> np.ndarray:
        """Features ``float64 [N, F]`` as a numpy array (:meth:`tensor`, brought to the host)."""
        return self.tensor(images).cpu().numpy()

    def folder(self, path: str | Path, num_workers: int = 0) -> np.ndarray:
        """Features of every image file under ``path`` through ``cleanfid.fid.get_folder_features``."""
        from cleanfid.fid import get_folder_features

        if not Path(path).is_dir():
            raise FileNotFoundError(f"no folder at {path}")
        feats = get_folder_features(str(path), self.model, num_workers=num_workers,
                                    batch_size=self.batch_size, device=self.device,
                                    mode=self.mode, verbose=False)
        return feats.astype(np.float64)


def _check_features(feats: np.ndarray, name: str) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"{name} must be features [N >= 2, F], got shape {feats.shape}")
    return feats


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets ``[N, F]`` (unbiased covariances).

    ||μa - μb||² + tr(Σa + Σb - 2 (Σb^½ Σa Σb^½)^½), i.e. the squared W2 between the
    fitted Gaussians (Dowson & Landau 1982; Heusel et al. 2017), via ``dotlib.gaussian.w2``.
    """
    from dotlib.gaussian import GaussianStats, w2

    a, b = _check_features(feats_a, "feats_a"), _check_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    sa = GaussianStats(a.shape[1]).update(torch.from_numpy(a))
    sb = GaussianStats(b.shape[1]).update(torch.from_numpy(b))
    return float(w2(sa.mean, sa.cov, sb.mean, sb.cov))


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std over subsets of the unbiased MMD².

    Kernel k(x, y) = (xᵀy / F + 1)³. Each subset draws m = min(Na, Nb, subset_size)
    rows of each set without replacement (numpy ``default_rng(seed)``) and estimates
    MMD² = [Σ_{i≠j} k(a_i, a_j) + Σ_{i≠j} k(b_i, b_j)] / (m(m-1)) - 2 Σ_ij k(a_i, b_j) / m²
    (Bińkowski et al., ICLR 2018; clean-fid's ``kernel_distance``). Raw units (the paper
    prints ×10³).
    """
    a, b = _check_features(feats_a, "feats_a"), _check_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    dim = a.shape[1]
    m = min(a.shape[0], b.shape[0], subset_size)
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for index in range(subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        k_xx = (x @ x.T / dim + 1.0) ** 3
        k_yy = (y @ y.T / dim + 1.0) ** 3
        k_xy = (x @ y.T / dim + 1.0) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[index] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def inception_score(probabilities: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score: mean and std over ``splits`` of exp(E_x KL(p(y|x) || p(y))).

    ``probabilities``: ``[N, K]`` class probabilities (rows sum to 1), split in order into
    ``splits`` near-equal chunks, p(y) being each chunk's mean (Salimans et al. 2016).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise ValueError(f"need probabilities [N >= splits, K] and splits >= 1, got {p.shape}, {splits}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probabilities must be non-negative rows summing to 1")
    from scipy.special import xlogy

    scores = []
    for chunk in np.array_split(p, splits):
        marginal = chunk.mean(axis=0, keepdims=True)
        kl = (xlogy(chunk, chunk) - xlogy(chunk, marginal)).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
