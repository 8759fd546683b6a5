"""Image-quality metrics: distortion, perception with weights, perception without weights.

Distortion (paired, one value per image, ``float64 [B]``):
    :func:`mse`, :func:`psnr`, :func:`ssim` (Wang et al. 2004, exactly scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``), :class:`LPIPS` (VGG, Zhang et al.
    2018) when its weights are on disk.

Perception with weights (unpaired, one value per *set*):
    FID, KID and IS through clean-fid's "clean" pipeline (Parmar et al., CVPR 2022):
    images are quantised to ``uint8``, resized to 299x299 by PIL bicubic on float
    channels (``cleanfid.resize.build_resizer("clean")``) and fed in [0, 255] to a
    feature model by ``cleanfid.fid.get_batch_features``. :class:`CleanFeatures` runs
    that pipeline for ANY feature model: the torchscript Inception of
    :func:`load_inception` (missing weights raise :class:`MetricUnavailable` before any
    download is attempted) or an injected callable, which is how the tests exercise
    the very same code offline. :func:`fid` is the squared Fréchet (W2) distance of
    Gaussians fitted to the features (``dotlib.gaussian.w2``), :func:`kid` the unbiased
    polynomial-kernel MMD² over subsets (Bińkowski et al. 2018), :func:`inception_score`
    the split-wise exp(E KL(p(y|x) || p(y))) (Salimans et al. 2016).

Perception without weights (always available):
    :class:`SlicedWasserstein`, the sliced Wasserstein distance between 7x7 patches of
    the Laplacian pyramids of two image sets (Karras et al., "Progressive Growing of
    GANs", ICLR 2018, §5 and appendix D). It compares pixel-patch statistics of the
    outputs with those of natural images; it is NOT the latent W2 that DOT minimises.
    Use a content-matched reference (the clean evaluation images, as restoration papers
    compute FID against the ground truth, or disjoint tiles of the same photos).

Uncertainty: per-image metrics report the standard deviation over images; set-level
metrics report a bootstrap standard deviation over resampled images (fixed seed), KID
its standard deviation over subsets and IS over splits (as the paper's table).

:func:`perceptual_index` computes one set-level index by name (``swd``, ``fid``, ``kid``,
``is``) as ``(value, spread)``. :class:`Evaluator` ties everything together for the
study: one reference set of natural images, then one :class:`MetricReport` per
evaluated signal, with every metric that could not be computed recorded in
``missing`` with its reason. Values are in raw units (KID and SWD are printed ×10³ by
:mod:`dotlib.tables` and :mod:`dotlib.plots`).
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "INCEPTION_ENV",
    "INCEPTION_FILE",
    "LPIPS",
    "LPIPS_LIN_ENV",
    "LPIPS_VGG_ENV",
    "STUDY_COLUMNS",
    "CleanFeatures",
    "Evaluator",
    "MetricReport",
    "MetricUnavailable",
    "PERCEPTUAL_INDICES",
    "SWDResult",
    "SlicedWasserstein",
    "bootstrap",
    "fid",
    "inception_file",
    "inception_score",
    "kid",
    "laplacian_pyramid",
    "load_inception",
    "load_lpips",
    "mse",
    "perceptual_index",
    "psnr",
    "ssim",
    "swd",
]

ImageSet = torch.Tensor | Sequence[torch.Tensor]

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_ENV = "DOTLIB_INCEPTION_PATH"
LPIPS_VGG_ENV = "DOTLIB_LPIPS_VGG"
LPIPS_LIN_ENV = "DOTLIB_LPIPS_LIN"
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"

#: Metric columns of the study table (see CONTEXT: one row per signal).
STUDY_COLUMNS = (
    "psnr", "psnr_sd", "ssim", "ssim_sd", "mse", "mse_sd", "lpips", "lpips_sd",
    "swd", "swd_sd", "fid", "kid", "kid_sd", "is", "is_sd",
)


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; ``reason`` says what is missing and how to get it."""

    def __init__(self, metric: str, reason: str):
        super().__init__(f"{metric} unavailable: {reason}")
        self.metric = metric
        self.reason = reason


# --------------------------------------------------------------------------- inputs

def _check_batch(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {images.dtype}")


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    _check_batch(a, "a")
    _check_batch(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _as_list(images: ImageSet, name: str) -> list[torch.Tensor]:
    """A batch ``[B, 3, H, W]`` or a sequence of ``[3, H, W]`` images -> list of ``[3, H, W]``."""
    if isinstance(images, torch.Tensor):
        _check_batch(images, name)
        items = list(images)
    else:
        items = list(images)
    if not items:
        raise ValueError(f"{name} holds no images")
    for index, image in enumerate(items):
        if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{name}[{index}] must be a [3, H, W] tensor, got {shape}")
    return items


# ----------------------------------------------------------------------- distortion

def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, ``float64 [B]``, over all channels and pixels (range [0, 1])."""
    _check_pair(a, b)
    return (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, data range 1: ``10 log10(1 / MSE)``, ``float64 [B]``.

    Identical images give ``inf``.
    """
    return 10.0 * torch.log10(1.0 / mse(a, b))


def _gaussian_window(sigma: float, truncate: float, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _valid_separable_filter(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Correlate ``[N, 1, H, W]`` with ``window ⊗ window`` at the valid positions only.

    On CPU through ``scipy.ndimage.correlate1d`` (about 3x faster than ``conv2d`` in
    float64), elsewhere through two ``conv2d`` calls; both agree to 1e-15.
    """
    size = window.numel()
    if images.device.type != "cpu":
        images = F.conv2d(images, window.view(1, 1, 1, size))
        return F.conv2d(images, window.view(1, 1, size, 1))
    from scipy.ndimage import correlate1d

    radius, taps = size // 2, window.numpy()
    array = correlate1d(images.detach().numpy(), taps, axis=-1, mode="constant")[..., radius:-radius]
    array = correlate1d(array, taps, axis=-2, mode="constant")[..., radius:-radius, :]
    return torch.from_numpy(array)


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, truncate: float = 3.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), ``float64 [B]``, data range 1.

    Local statistics use a separable Gaussian window (σ = 1.5, radius 5: 11x11) and the
    population (co)variances; the SSIM map is averaged over the positions whose window
    lies inside the image (scikit-image crops ``(win - 1) // 2`` pixels of its
    reflect-padded map, which is the same thing), then over channels. Equals
    ``skimage.metrics.structural_similarity(x, y, channel_axis=-1, data_range=1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` on float64 input.
    """
    _check_pair(a, b)
    window = _gaussian_window(sigma, truncate, a.device)
    size = window.numel()
    batch, channels, height, width = a.shape
    if height < size or width < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {height}x{width}")
    x = a.double().reshape(batch * channels, 1, height, width)
    y = b.double().reshape(batch * channels, 1, height, width)
    stack = _valid_separable_filter(torch.cat([x, y, x * x, y * y, x * y], dim=0), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = stack.chunk(5, dim=0)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = k1 ** 2, k2 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1).reshape(batch, channels).mean(dim=1)


# ---------------------------------------------------------------------------- LPIPS

_VGG_TAPS = (4, 9, 16, 23, 30)  # ends of the slices relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_VGG_CHANNELS = (64, 128, 256, 512, 512)


class LPIPS(torch.nn.Module):
    """LPIPS v0.1 with a VGG16 trunk (Zhang et al., CVPR 2018): ``forward(a, b) -> float64 [B]``.

    d(a, b) = Σ_l mean_hw || w_l ⊙ (φ̂_l(a) - φ̂_l(b)) ||², φ̂_l the channel-unit-normalised
    VGG16 activations at relu1_2 ... relu5_3 of inputs mapped to [-1, 1] then standardised
    by LPIPS's fixed shift/scale, w_l the learned non-negative 1x1 weights.

    ``vgg_state``: torchvision VGG16 state dict (``features.*`` keys are used);
    ``lin_state``: LPIPS's ``vgg.pth`` state dict (five ``lin{k}.…weight`` [1, C, 1, 1]).
    """

    def __init__(self, vgg_state: dict[str, torch.Tensor], lin_state: dict[str, torch.Tensor]):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        with torch.device("meta"):  # structure only; the weights come from vgg_state
            trunk = make_layers(cfgs["D"])  # torchvision's VGG16 ``features``
        features = {k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")}
        if not features:
            raise ValueError("vgg_state has no 'features.*' keys; pass a torchvision VGG16 state dict")
        trunk.load_state_dict(features, assign=True)
        starts = (0,) + _VGG_TAPS[:-1]
        self.slices = torch.nn.ModuleList(trunk[s:e] for s, e in zip(starts, _VGG_TAPS))
        self.lins = torch.nn.ModuleList()
        for level, channels in enumerate(_VGG_CHANNELS):
            keys = [k for k in lin_state if k.startswith(f"lin{level}.") and k.endswith("weight")]
            if len(keys) != 1 or tuple(lin_state[keys[0]].shape) != (1, channels, 1, 1):
                raise ValueError(f"lin_state must hold one lin{level}.*weight of shape [1, {channels}, 1, 1]")
            conv = torch.nn.Conv2d(channels, 1, 1, bias=False)
            conv.weight.data.copy_(lin_state[keys[0]])
            self.lins.append(conv)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (2.0 * images - 1.0 - self.shift) / self.scale
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b)
        device = self.shift.device
        fa = self._features(a.to(device, torch.float32))
        fb = self._features(b.to(device, torch.float32))
        total = torch.zeros(a.shape[0], dtype=torch.float64, device=device)
        for lin, xa, xb in zip(self.lins, fa, fb):
            total += lin((xa - xb).pow(2)).mean(dim=(1, 2, 3)).double()
        return total


def _resolve(metric: str, what: str, explicit: Path | None, env: str, env_value: Path | None,
             defaults: Sequence[Path], how: str) -> Path:
    """First existing file among ``explicit``, ``env_value`` (from ``$env``) and ``defaults``.

    Raises :class:`MetricUnavailable` naming ``what``, the places looked at and ``how`` to get it.
    """
    if explicit is not None:
        if explicit.is_file():
            return explicit
        raise MetricUnavailable(metric, f"{what} not found at the given path {explicit}. {how}")
    looked = ([env_value] if env_value is not None else []) + list(defaults)
    for path in looked:
        if path.is_file():
            return path
    places = ", ".join(str(p) for p in looked) or "nowhere"
    env_state = "unset" if env_value is None else "set"
    raise MetricUnavailable(metric, f"{what} not found (looked at: {places}; ${env} is {env_state}). {how}")


def _optional_path(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path).expanduser()


def _env_path(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else None


def load_lpips(device: str | torch.device = "cpu", vgg_path: str | Path | None = None,
               lin_path: str | Path | None = None) -> LPIPS:
    """LPIPS (VGG) from files on disk; never downloads.

    VGG16: ``vgg_path``, else ``$DOTLIB_LPIPS_VGG``, else torch hub's cache
    (``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``). Linear layers: ``lin_path``,
    else ``$DOTLIB_LPIPS_LIN``, else the ``lpips`` package's ``weights/v0.1/vgg.pth`` when
    that package is installed. Raises :class:`MetricUnavailable` naming the missing file.
    """
    import importlib.util

    vgg_default = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    vgg = _resolve("lpips", f"VGG16 weights {VGG16_FILE}", _optional_path(vgg_path), LPIPS_VGG_ENV,
                   _env_path(LPIPS_VGG_ENV), [vgg_default],
                   f"Download {VGG16_URL} and put it at {vgg_default} or set ${LPIPS_VGG_ENV}.")
    spec = importlib.util.find_spec("lpips")
    lin_defaults = []
    if spec is not None and spec.origin is not None:
        lin_defaults.append(Path(spec.origin).parent / "weights" / "v0.1" / "vgg.pth")
    lin = _resolve("lpips", "LPIPS linear weights vgg.pth (v0.1)", _optional_path(lin_path), LPIPS_LIN_ENV,
                   _env_path(LPIPS_LIN_ENV), lin_defaults,
                   f"`pip install lpips` (ships them) or download {LPIPS_LIN_URL} and set ${LPIPS_LIN_ENV}.")
    vgg_state = torch.load(vgg, map_location="cpu", weights_only=True)
    lin_state = torch.load(lin, map_location="cpu", weights_only=True)
    return LPIPS(vgg_state, lin_state).to(device)


# ------------------------------------------------------------ clean-fid feature path

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
    env_value = _env_path(INCEPTION_ENV)
    found = _resolve("fid/kid/is", f"Inception weights {INCEPTION_FILE}", explicit, INCEPTION_ENV,
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
                   output: str = "features", batch_size: int = 32) -> "CleanFeatures":
    """clean-fid's torchscript Inception as a :class:`CleanFeatures` extractor; never downloads.

    ``output="features"``: the 2048-d pool features of FID/KID; ``"probabilities"``: the
    1008-class softmax used by IS. See :func:`inception_file` for where weights are looked for.
    """
    if output not in ("features", "probabilities"):
        raise ValueError(f"output must be 'features' or 'probabilities', got {output!r}")
    from cleanfid.inception_torchscript import InceptionV3W

    weights = inception_file(path)
    model = InceptionV3W(str(weights.parent), download=False, resize_inside=False).to(device).eval()
    if output == "probabilities":
        model = _InceptionProbabilities(model).to(device).eval()
    return CleanFeatures(model, name=f"inception_{output}", device=device, batch_size=batch_size)


class CleanFeatures:
    """clean-fid "clean" feature pipeline around any model: ``images -> float64 [N, F]``.

    Each image in [0, 1] is quantised to ``uint8`` (as if saved to PNG; ``quantize=False``
    keeps floats, like clean-fid's generator path), resized to 299x299 by
    ``cleanfid.resize.build_resizer("clean")`` and batched in [0, 255] through
    ``cleanfid.fid.get_batch_features(batch, model, device)``. ``model`` maps
    ``float32 [B, 3, 299, 299]`` in [0, 255] on ``device`` to ``[B, F]``: the Inception of
    :func:`load_inception`, or any injected extractor (tests use a fixed random net).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], name: str,
                 device: str | torch.device = "cpu", batch_size: int = 32, quantize: bool = True):
        if not callable(model):
            raise TypeError("model must be callable: float32 [B, 3, 299, 299] in [0, 255] -> [B, F]")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from cleanfid.resize import build_resizer

        self.model, self.name = model, name
        self.device = torch.device(device)
        self.batch_size, self.quantize = batch_size, quantize
        self._resize = build_resizer("clean")

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        array = image.detach().float().cpu().clamp(0.0, 1.0).permute(1, 2, 0).numpy() * 255.0
        if self.quantize:
            array = np.rint(array).astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(self._resize(array).transpose(2, 0, 1)))

    def __call__(self, images: ImageSet) -> np.ndarray:
        from cleanfid.fid import get_batch_features

        items = _as_list(images, "images")
        chunks = []
        for start in range(0, len(items), self.batch_size):
            batch = torch.stack([self._prepare(im) for im in items[start:start + self.batch_size]])
            chunks.append(get_batch_features(batch, self.model, self.device))
        return np.concatenate(chunks).astype(np.float64)

    def folder(self, path: str | Path, num_workers: int = 0) -> np.ndarray:
        """Features of every image file under ``path`` through ``cleanfid.fid.get_folder_features``."""
        from cleanfid.fid import get_folder_features

        if not Path(path).is_dir():
            raise FileNotFoundError(f"no folder at {path}")
        feats = get_folder_features(str(path), self.model, num_workers=num_workers,
                                    batch_size=self.batch_size, device=self.device,
                                    mode="clean", verbose=False)
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


def bootstrap(statistic: Callable[[np.ndarray], float], n_items: int, n_resamples: int = 100,
              seed: int = 0) -> np.ndarray:
    """``statistic(indices)`` on ``n_resamples`` resamples (with replacement) of ``range(n_items)``.

    Returns ``float64 [n_resamples]``; its std is the bootstrap spread of a set-level metric.
    """
    if n_items < 1 or n_resamples < 1:
        raise ValueError(f"need n_items >= 1 and n_resamples >= 1, got {n_items}, {n_resamples}")
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_resamples)],
                    dtype=np.float64)


# ----------------------------------------------------------------- sliced Wasserstein

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(images: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial filter [1 4 6 4 1]/16 with reflect padding, per channel.

    Written as shifted sums: on CPU this is about twice as fast as a grouped conv2d.
    """
    height, width = images.shape[-2:]
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    rows = sum(w / 16.0 * padded[..., :, k:k + width] for k, w in enumerate(_BINOMIAL))
    return sum(w / 16.0 * rows[..., k:k + height, :] for k, w in enumerate(_BINOMIAL))


def _expand(coarse: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Upsample by 2 to ``size``: insert zeros between samples, blur with 4x the gain."""
    up = coarse.new_zeros(*coarse.shape[:-2], *size)
    up[..., ::2, ::2] = coarse
    return 4.0 * _blur(up)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid (Burt & Adelson 1983) of ``[B, C, H, W]``: ``levels`` bands, finest first.

    G₀ = images, G_{k+1} = blur(G_k)[::2, ::2]; band k = G_k - up(G_{k+1}) where ``up``
    inserts zeros and blurs with 4x the gain; the last band is the coarsest Gaussian level.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    bands = []
    current = images
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 3:
            raise ValueError(f"images {tuple(images.shape[-2:])} too small for {levels} pyramid levels")
        down = _blur(current)[..., ::2, ::2]
        bands.append(current - _expand(down, current.shape[-2:]))
        current = down
    bands.append(current)
    return bands


def _sort_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending; on CPU numpy's SIMD sort (about 8x faster than torch's)."""
    if matrix.device.type == "cpu":
        return torch.from_numpy(np.sort(matrix.numpy(), axis=1))
    return matrix.sort(dim=1).values


@dataclass(frozen=True)
class SWDResult:
    """Sliced Wasserstein distances, raw units (normalised descriptors; Karras et al. print ×10³).

    ``levels``: one value per pyramid band, finest first; ``mean``: their average;
    ``sd``: bootstrap std of ``mean`` over resampled evaluated images (NaN if not asked).
    """

    levels: tuple[float, ...]
    mean: float
    sd: float = float("nan")


class SlicedWasserstein:
    """Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al., ICLR 2018).

    For each pyramid band (finest first, down to ``min_size`` pixels, the last band being
    the coarsest Gaussian level), ``patches_per_image`` random ``patch_size``² neighbourhoods
    per image form descriptors of 3·p² values. Each set's descriptors are normalised per
    band and colour channel to zero mean and unit variance (over its descriptors and
    positions), projected on ``directions`` random unit vectors (fixed ``seed``, shared by
    both sets), and the 1-D Wasserstein-1 distances of the projections are averaged:

        SWD_l = mean_θ ∫ |F_{θ·a}(t) - F_{θ·b}(t)| dt,   SWD = mean_l SWD_l.

    It measures how far the multi-scale patch statistics of a set are from those of a
    reference set of natural images; it needs no network weights. Distances are in units
    of the normalised descriptors (dimensionless; Karras et al. report ×10³). Descriptors
    and projections are float32 (sorting dominates the cost); W1 means are float64.

    The reference should match the evaluated images in content, as FID in restoration
    papers is computed against the ground-truth set: the clean versions of the evaluated
    images, or disjoint tiles of the same photos. With only a few photos per set, the
    distance between DIFFERENT photos is larger than the effect of a mild degradation,
    and removing detail can even bring a textured photo closer to a smoother reference
    (measured on the embedded photos: JPEG q=5 of the eval photos scored closer to the
    target photos than the clean eval photos did).

    The reference set is processed once; :meth:`__call__` evaluates any number of sets.
    """

    def __init__(self, reference: ImageSet, levels: int | None = None, patch_size: int = 7,
                 patches_per_image: int = 128, directions: int = 512, min_size: int = 16,
                 seed: int = 0, device: str | torch.device = "cpu"):
        if patch_size < 1 or patches_per_image < 1 or directions < 1 or min_size < patch_size:
            raise ValueError("need patch_size, patches_per_image, directions >= 1 and min_size >= patch_size")
        self.patch_size, self.patches_per_image = patch_size, patches_per_image
        self.seed, self.device = seed, torch.device(device)
        items = _as_list(reference, "reference")
        if levels is None:
            smallest = min(min(im.shape[-2:]) for im in items)
            if smallest < min_size:
                raise ValueError(f"reference images ({smallest} px) are smaller than min_size={min_size}")
            levels = int(math.floor(math.log2(smallest / min_size))) + 1
        self.levels = levels
        generator = torch.Generator().manual_seed(seed + 1)
        dim = 3 * patch_size * patch_size
        theta = torch.randn(levels, dim, directions, generator=generator, dtype=torch.float64)
        self._theta = (theta / theta.norm(dim=1, keepdim=True)).to(self.device, torch.float32)
        self._reference = [self._project(band, level)
                           for level, band in enumerate(self.descriptors(items))]

    def descriptors(self, images: ImageSet) -> list[torch.Tensor]:
        """Raw patch descriptors, one ``float32 [N_img, P, 3, p, p]`` tensor per band.

        Patch corners are drawn from ``seed`` in image order, so a set always gets the same
        descriptors; images of equal size go through the pyramid as one batch.
        """
        items = _as_list(images, "images")
        generator = torch.Generator().manual_seed(self.seed)
        corners = torch.rand(len(items), self.levels, 2, self.patches_per_image,
                             generator=generator, dtype=torch.float64)
        p = self.patch_size
        offsets = torch.arange(p, device=self.device)
        out = [torch.empty(len(items), self.patches_per_image, 3, p, p, dtype=torch.float32,
                           device=self.device) for _ in range(self.levels)]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(items):
            groups.setdefault(tuple(image.shape[-2:]), []).append(index)
        for shape, indices in groups.items():
            batch = torch.stack([items[i] for i in indices]).to(self.device, torch.float32)
            for level, band in enumerate(laplacian_pyramid(batch, self.levels)):
                height, width = band.shape[-2:]
                if height < p or width < p:
                    raise ValueError(f"images of {shape} are too small for {self.levels} levels "
                                     f"of {p}x{p} patches")
                span = torch.tensor([height - p + 1, width - p + 1], dtype=torch.float64)
                top_left = (corners[indices, level] * span[None, :, None]).long().to(self.device)
                rows = top_left[:, 0, :, None, None] + offsets[:, None]   # [B, P, p, 1]
                cols = top_left[:, 1, :, None, None] + offsets[None, :]   # [B, P, 1, p]
                which = torch.arange(len(indices), device=self.device)[:, None, None, None]
                patches = band[which, :, rows, cols]                      # [B, P, p, p, 3]
                out[level][indices] = patches.permute(0, 1, 4, 2, 3)
        return out

    def _project(self, band: torch.Tensor, level: int) -> torch.Tensor:
        """Normalise ``[N_img, P, 3, p, p]`` descriptors per channel; sorted projections ``[D, N]``.

        θᵀ((d - m) / s) is computed as (θ / s)ᵀ d - (θ / s)ᵀ m, without a normalised copy.
        """
        flat = band.reshape(-1, *band.shape[2:])
        std, mean = torch.std_mean(flat, dim=(0, 2, 3), correction=0)
        theta = self._theta[level].view(3, -1, self._theta.shape[-1]) / std.clamp_min(1e-12)[:, None, None]
        offset = torch.einsum("ckd,c->d", theta, mean)
        theta = theta.reshape(-1, theta.shape[-1])
        return _sort_rows(theta.T @ flat.reshape(flat.shape[0], -1).T - offset[:, None])

    @staticmethod
    def _w1(sorted_a: torch.Tensor, sorted_b: torch.Tensor) -> float:
        """Mean over rows of the exact 1-D W1 between the empirical laws of ``[D, Na]`` and ``[D, Nb]``."""
        na, nb = sorted_a.shape[1], sorted_b.shape[1]
        if na == nb:
            return float((sorted_a - sorted_b).abs().double().mean())
        values = torch.cat([sorted_a, sorted_b], dim=1)
        steps = torch.cat([sorted_a.new_full((na,), 1.0 / na), sorted_b.new_full((nb,), -1.0 / nb)])
        order = values.argsort(dim=1)
        values = values.gather(1, order)
        cdf_gap = steps[order].cumsum(dim=1)[:, :-1].abs()
        return float((cdf_gap * values.diff(dim=1)).sum(dim=1).mean())

    def _distance(self, bands: list[torch.Tensor], indices: torch.Tensor | None = None) -> list[float]:
        out = []
        for level, band in enumerate(bands):
            chosen = band if indices is None else band[indices]
            out.append(self._w1(self._project(chosen, level), self._reference[level]))
        return out

    def __call__(self, images: ImageSet, n_bootstrap: int = 0, seed: int = 0) -> SWDResult:
        """SWD of ``images`` to the reference; ``n_bootstrap`` > 0 adds a bootstrap std over images."""
        bands = self.descriptors(images)
        levels = self._distance(bands)
        sd = float("nan")
        if n_bootstrap > 0:
            def statistic(indices: np.ndarray) -> float:
                return float(np.mean(self._distance(bands, torch.from_numpy(indices).to(self.device))))

            sd = float(bootstrap(statistic, bands[0].shape[0], n_bootstrap, seed).std(ddof=1))
        return SWDResult(levels=tuple(levels), mean=float(np.mean(levels)), sd=sd)


def swd(images_a: ImageSet, images_b: ImageSet, **options) -> SWDResult:
    """One-off :class:`SlicedWasserstein` distance of ``images_a`` to the reference ``images_b``."""
    n_bootstrap = options.pop("n_bootstrap", 0)
    return SlicedWasserstein(images_b, **options)(images_a, n_bootstrap=n_bootstrap)


# ------------------------------------------------------------------------ evaluation

PERCEPTUAL_INDICES = ("swd", "fid", "kid", "is")


def perceptual_index(name: str, images: ImageSet, reference: ImageSet, *, seed: int = 0,
                     device: str | torch.device = "cpu", n_bootstrap: int | None = None,
                     features: CleanFeatures | None = None, **options) -> tuple[float, float]:
    """``(value, spread)`` of one set-level perceptual metric of ``images`` against ``reference``.

    ``swd``: :class:`SlicedWasserstein` mean over bands (``options`` go to it) and its
    bootstrap std over images (``n_bootstrap`` default 30). ``fid``: Fréchet distance of
    clean-fid features; spread = bootstrap std over images when ``n_bootstrap`` > 0,
    else NaN (default: each resample costs a 2048-d eigendecomposition). ``kid``: mean
    and std over subsets. ``is``: mean and std over splits (``reference`` unused).
    ``features``: an injected :class:`CleanFeatures` (class probabilities for ``is``);
    by default clean-fid's Inception, which raises :class:`MetricUnavailable` when its
    weights are missing.
    """
    if name not in PERCEPTUAL_INDICES:
        raise ValueError(f"unknown perceptual index {name!r}; known: {', '.join(PERCEPTUAL_INDICES)}")
    if name == "swd":
        result = SlicedWasserstein(reference, seed=seed, device=device, **options)(
            images, n_bootstrap=30 if n_bootstrap is None else n_bootstrap, seed=seed)
        return result.mean, result.sd
    if options:
        raise TypeError(f"unexpected options for {name}: {sorted(options)}")
    output = "probabilities" if name == "is" else "features"
    extractor = features if features is not None else load_inception(device, output=output)
    feats = extractor(images)
    if name == "is":
        items = feats.shape[0]
        return inception_score(feats, splits=min(10, items))
    reference_feats = extractor(reference)
    if name == "kid":
        return kid(feats, reference_feats, seed=seed)
    value = fid(feats, reference_feats)
    resamples = 0 if n_bootstrap is None else n_bootstrap
    if resamples == 0:
        return value, float("nan")
    spread = bootstrap(lambda idx: fid(feats[idx], reference_feats), feats.shape[0], resamples, seed)
    return value, float(spread.std(ddof=1))


@dataclass
class MetricReport:
    """Metric values of one evaluated set (study-table columns) and the reasons for the missing ones."""

    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """Every study column: its value, or NaN when missing / not applicable."""
        return {name: self.values.get(name, float("nan")) for name in STUDY_COLUMNS}


class Evaluator:
    """All study metrics of evaluated image sets against one reference set of natural images.

    ``features`` / ``probabilities``: ``"inception"`` (load clean-fid's Inception; if its
    weights are missing, FID/KID resp. IS are recorded in ``missing`` with the reason),
    a :class:`CleanFeatures` (injected extractor, same code path), or ``None`` (skipped,
    recorded as disabled). ``lpips``: ``"vgg"`` (load from disk or record missing), an
    :class:`LPIPS`, or ``None``. SWD is always computed (``swd_options`` go to
    :class:`SlicedWasserstein`). Spreads: std over images for paired metrics, bootstrap
    std (``n_bootstrap`` resamples, ``seed``) for SWD, std over subsets for KID and over
    ``is_splits`` splits for IS.
    """

    def __init__(self, reference: ImageSet, *, device: str | torch.device = "cpu",
                 features: str | CleanFeatures | None = "inception",
                 probabilities: str | CleanFeatures | None = "inception",
                 lpips: str | LPIPS | None = "vgg", swd_options: dict | None = None,
                 n_bootstrap: int = 30, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 is_splits: int = 10, seed: int = 0):
        self.device = torch.device(device)
        self.n_bootstrap, self.seed = n_bootstrap, seed
        self.kid_subsets, self.kid_subset_size, self.is_splits = kid_subsets, kid_subset_size, is_splits
        self.missing: dict[str, str] = {}
        options = {"seed": seed, "device": device, **(swd_options or {})}
        self.swd = SlicedWasserstein(reference, **options)
        self.features = self._load(features, "features", ("fid", "kid"))
        self.probabilities = self._load(probabilities, "probabilities", ("is",))
        self.reference_features = None if self.features is None else self.features(reference)
        if lpips == "vgg":
            try:
                self.lpips = load_lpips(self.device)
            except MetricUnavailable as error:
                self.lpips, self.missing["lpips"] = None, error.reason
        elif lpips is None:
            self.lpips, self.missing["lpips"] = None, "disabled by the caller"
        elif isinstance(lpips, LPIPS):
            self.lpips = lpips.to(self.device)
        else:
            raise TypeError(f"lpips must be 'vgg', an LPIPS or None, got {lpips!r}")

    def _load(self, spec: str | CleanFeatures | None, output: str,
              metrics: tuple[str, ...]) -> CleanFeatures | None:
        if isinstance(spec, CleanFeatures):
            return spec
        if spec is None:
            self.missing.update({m: "disabled by the caller" for m in metrics})
            return None
        if spec != "inception":
            raise TypeError(f"{output} must be 'inception', a CleanFeatures or None, got {spec!r}")
        try:
            return load_inception(self.device, output=output)
        except MetricUnavailable as error:
            self.missing.update({m: error.reason for m in metrics})
            return None

    def __call__(self, images: torch.Tensor, clean: torch.Tensor | None = None) -> MetricReport:
        """Metrics of ``images`` ``[B, 3, H, W]``; paired ones (PSNR, SSIM, MSE, LPIPS) need ``clean``."""
        _check_batch(images, "images")
        report = MetricReport(missing=dict(self.missing))
        values = report.values
        if clean is not None:
            _check_pair(images, clean)
            paired = {"psnr": psnr(images, clean), "ssim": ssim(images, clean), "mse": mse(images, clean)}
            if self.lpips is not None:
                paired["lpips"] = self.lpips(images, clean)
            for name, per_image in paired.items():
                per_image = per_image.cpu()
                values[name] = float(per_image.mean())
                values[f"{name}_sd"] = float(per_image.std()) if len(per_image) > 1 else float("nan")
        result = self.swd(images, n_bootstrap=self.n_bootstrap, seed=self.seed)
        values["swd"], values["swd_sd"] = result.mean, result.sd
        if self.features is not None:
            feats = self.features(images)
            values["fid"] = fid(feats, self.reference_features)
            values["kid"], values["kid_sd"] = kid(feats, self.reference_features, self.kid_subsets,
                                                  self.kid_subset_size, self.seed)
        if self.probabilities is not None:
            splits = min(self.is_splits, images.shape[0])
            values["is"], values["is_sd"] = inception_score(self.probabilities(images), splits)
        return report
