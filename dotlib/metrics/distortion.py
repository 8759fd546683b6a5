"""Paired distortion metrics, one value per image: MSE, PSNR, SSIM (as scikit-image), LPIPS (VGG)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .assets import display_path, env_path, optional_path, resolve
from .inputs import check_pair

__all__ = ["LPIPS", "LPIPS_LIN_ENV", "LPIPS_VGG_ENV", "load_lpips", "mse", "psnr", "ssim"]

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
        check_pair(a, b)
        device = self.shift.device
        fa = self._features(a.to(device, torch.float32))
        fb = self._features(b.to(device, torch.float32))
        total = torch.zeros(a.shape[0], dtype=torch.float64, device=device)
        for lin, xa, xb in zip(self.lins, fa, fb):
            total += lin((xa - xb).pow(2)).mean(dim=(1, 2, 3)).double()
        return total


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
    vgg_state = torch.load(vgg, map_location="cpu", weights_only=True)
    lin_state = torch.load(lin, map_location="cpu", weights_only=True)
    return LPIPS(vgg_state, lin_state).to(device)
