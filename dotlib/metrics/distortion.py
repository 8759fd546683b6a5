"""Paired distortion metrics, one value per image: MSE, PSNR, SSIM (as scikit-image), LPIPS (VGG).

LPIPS is the ``lpips`` package's network (Zhang et al., "The Unreasonable Effectiveness
of Deep Features as a Perceptual Metric", CVPR 2018; v0.1, VGG16 trunk), with the
calibrated linear weights it ships. Two things around it are written here, each for a
stated reason:

- the weight lookup (:func:`load_lpips`): ``lpips.LPIPS(net="vgg")`` gets its VGG16
  trunk from torchvision's ``IMAGENET1K_V1`` weights, i.e. ``torch.hub`` downloads
  ``vgg16-397923af.pth`` when it is not cached, and it cannot be pointed at a file.
  The study must run offline and say what is missing, so the trunk is looked up on
  disk (argument, ``$DOTLIB_LPIPS_VGG``, torch hub's cache) and a missing file raises
  :class:`MetricUnavailable` naming it and where to get it, before any download;
- the construction (:class:`LPIPS`): the package's network is built on the ``meta``
  device without weights (``pnet_rand=True``, ``pretrained=False``) and the trunk and
  linear weights are assigned from state dicts. Measured on CPU, building it with a
  random trunk takes 1.8 s (a full VGG16, classifier included, initialised and then
  thrown away), on ``meta`` 0.02 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .assets import MetricUnavailable, display_path, env_path, optional_path, resolve
from .inputs import check_pair

__all__ = ["LPIPS", "LPIPS_LIN_ENV", "LPIPS_VGG_ENV", "load_lpips", "mse", "psnr", "psnr_of_mse",
           "psnr_of_mse_slope", "ssim"]

LPIPS_VGG_ENV = "DOTLIB_LPIPS_VGG"
LPIPS_LIN_ENV = "DOTLIB_LPIPS_LIN"
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, ``float64 [B]``, over all channels and pixels (range [0, 1])."""
    check_pair(a, b)
    return (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, data range 1: ``10 log10(1 / MSE)``, ``float64 [B]``.

    Identical images give ``inf``.
    """
    return 10.0 * torch.log10(1.0 / mse(a, b))


def psnr_of_mse(mean_squared_error):
    r"""PSNR in dB, data range 1, of a (pooled) mean squared error: :math:`-10 \log_{10} \mathrm{MSE}`.

    Pooled over a set (the MSE of all its pixels at once), this is torchmetrics'
    ``PeakSignalNoiseRatio()`` as the authors use it; an MSE of 0 gives ``inf``. Works
    elementwise on floats, numpy arrays and tensors.
    """
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(mean_squared_error)


def psnr_of_mse_slope(mean_squared_error):
    r"""Derivative of :func:`psnr_of_mse`: :math:`-10 / (\ln 10 \cdot \mathrm{MSE})` dB per unit of MSE
    (for the delta-method interval of a pooled PSNR, :mod:`.streaming_evaluator`)."""
    with np.errstate(divide="ignore"):
        return -10.0 / (np.log(10.0) * mean_squared_error)


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
    check_pair(a, b)
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


class LPIPS(torch.nn.Module):
    """LPIPS v0.1 with a VGG16 trunk (Zhang et al., CVPR 2018): ``forward(a, b) -> float64 [B]``.

    The network is the ``lpips`` package's own ``lpips.LPIPS(net="vgg", version="0.1")``
    (held as :attr:`net`): d(a, b) = Σ_l mean_hw || w_l ⊙ (φ̂_l(a) - φ̂_l(b)) ||², φ̂_l the
    channel-unit-normalised VGG16 activations at relu1_2 ... relu5_3 of the inputs mapped
    from [0, 1] to [-1, 1] and standardised by its fixed shift/scale, w_l its
    non-negative 1x1 weights. Only the weights are put in here, from state dicts:

    ``vgg_state``: torchvision VGG16 state dict (its ``features.N.*`` keys are used; the
    package keeps torchvision's index ``N`` as the child name inside ``slice1..slice5``);
    ``lin_state``: LPIPS's ``vgg.pth`` state dict (five ``lin{k}.…weight`` [1, C, 1, 1]).

    The package's network is built on the ``meta`` device with a random trunk
    (``pnet_rand=True``) and no calibration file (``pretrained=False``), so it neither
    touches the network nor spends 1.8 s initialising a VGG16 (classifier included) whose
    weights are replaced at once; the given tensors are then assigned to it.
    """

    def __init__(self, vgg_state: dict[str, torch.Tensor], lin_state: dict[str, torch.Tensor]):
        super().__init__()
        import warnings

        import lpips

        with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=False``
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            with torch.device("meta"):
                net = lpips.LPIPS(pretrained=False, net="vgg", version="0.1", lpips=True, spatial=False,
                                  pnet_rand=True, verbose=False)
        features = {k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")}
        if not features:
            raise ValueError("vgg_state has no 'features.*' keys; pass a torchvision VGG16 state dict")
        state = net.state_dict()
        for key in state:
            parts = key.split(".")
            if parts[0] == "net":  # net.slice{s}.{N}.{weight,bias} <- features.{N}.{weight,bias}
                source = f"{parts[2]}.{parts[3]}"
                if source not in features:
                    raise ValueError(f"vgg_state lacks features.{source} (needed for LPIPS's {key})")
                if features[source].shape != state[key].shape:
                    raise ValueError(f"vgg_state's features.{source} has shape {tuple(features[source].shape)}, "
                                     f"LPIPS's VGG16 needs {tuple(state[key].shape)}")
                state[key] = features[source].to(torch.float32)
            elif parts[0].startswith("lin"):  # lin{k}.model.1.weight and its alias lins.{k}.model.1.weight
                level = int(parts[0][3:]) if parts[0] != "lins" else int(parts[1])
                channels = net.chns[level]
                keys = [k for k in lin_state if k.startswith(f"lin{level}.") and k.endswith("weight")]
                if len(keys) != 1 or tuple(lin_state[keys[0]].shape) != (1, channels, 1, 1):
                    raise ValueError(f"lin_state must hold one lin{level}.*weight of shape [1, {channels}, 1, 1]")
                state[key] = lin_state[keys[0]].to(torch.float32)
        left = [key for key, value in state.items() if value.is_meta]
        if left:
            raise RuntimeError(f"lpips.LPIPS has weights this loader does not fill: {left}")
        net.load_state_dict(state, strict=True, assign=True)
        self.net = net.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        check_pair(a, b)
        return self.distance(self.features(a), self.features(b))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised VGG activations φ̂_l of ``images [B, 3, H, W]`` in [0, 1], five levels:
        the package's forward up to its differences, so that a reference batch (the clean images,
        compared with dozens of signals) is passed through VGG16 once."""
        import lpips

        device = self.net.scaling_layer.shift.device
        scaled = self.net.scaling_layer(2 * images.to(device, torch.float32) - 1)
        return [lpips.normalize_tensor(level) for level in self.net.net.forward(scaled)]

    @torch.no_grad()
    def distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS ``float64 [B]`` between two :meth:`features` lists: the package's forward from there on."""
        total = 0
        for level, (fa, fb) in enumerate(zip(a, b)):
            total += self.net.lins[level]((fa - fb) ** 2).mean([2, 3], keepdim=True)
        return total.reshape(a[0].shape[0]).double()  # [B, 1, 1, 1] as the package returns it


def load_lpips(device: str | torch.device = "cpu", vgg_path: str | Path | None = None,
               lin_path: str | Path | None = None) -> LPIPS:
    """LPIPS (VGG) from files on disk; never downloads.

    VGG16: ``vgg_path``, else ``$DOTLIB_LPIPS_VGG``, else torch hub's cache
    (``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``). Linear layers: ``lin_path``,
    else ``$DOTLIB_LPIPS_LIN``, else the ``lpips`` package's ``weights/v0.1/vgg.pth`` when
    that package is installed. Raises :class:`MetricUnavailable` naming the missing file
    (or the missing ``lpips`` package).
    """
    import importlib.util

    vgg_default = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    vgg = resolve("lpips", f"VGG16 weights {VGG16_FILE}", optional_path(vgg_path), LPIPS_VGG_ENV,
                   env_path(LPIPS_VGG_ENV), [vgg_default],
                   f"Download {VGG16_URL} and put it at {display_path(vgg_default)} or set ${LPIPS_VGG_ENV}.")
    spec = importlib.util.find_spec("lpips")
    lin_defaults = []
    if spec is not None and spec.origin is not None:
        lin_defaults.append(Path(spec.origin).parent / "weights" / "v0.1" / "vgg.pth")
    lin = resolve("lpips", "LPIPS linear weights vgg.pth (v0.1)", optional_path(lin_path), LPIPS_LIN_ENV,
                   env_path(LPIPS_LIN_ENV), lin_defaults,
                   f"`pip install lpips` (ships them) or download {LPIPS_LIN_URL} and set ${LPIPS_LIN_ENV}.")
    if spec is None:
        raise MetricUnavailable("lpips", "the `lpips` package (its LPIPS network) is not installed: "
                                         "`pip install lpips==0.1.4` (see requirements.txt).")
    vgg_state = torch.load(vgg, map_location="cpu", weights_only=True)
    lin_state = torch.load(lin, map_location="cpu", weights_only=True)
    return LPIPS(vgg_state, lin_state).to(device)
