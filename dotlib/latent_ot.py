r"""Latent DOT: Gaussian optimal transport of overlapping latent patches (Adrai et al. 2023).

Fitting (Sec. 4 of the paper, steps 1–3 of ``shared/reference/algorithm.md``): images
are encoded, every *valid* overlapping p×p patch of every latent is a sample
:math:`v \in \mathbb R^{C p^2}`, and one Gaussian per distribution is fitted to all of
them (float64, unbiased): :math:`\mathcal N(\mu_s, \Sigma_s)` for restorations
:math:`x^*` (source), :math:`\mathcal N(\mu_t, \Sigma_t)` for natural images (target).
The operator is :func:`dotlib.gaussian.gaussian_map`,

.. math::
    T(v) = A (v - \mu_s) + \mu_t \;(+\, w,\ w \sim \mathcal N(0, \Sigma_w) \text{ if } \Sigma_s
    \text{ is singular}).

Transport: encode :math:`x^*`, move every valid patch of the latent (the positions the
statistics are fitted on) by :math:`T`, fold the overlaps back by (weighted) averaging,
decode; that is :math:`\hat x_0`. Near the border fewer patches overlap; replicate
padding, tried first, put coloured frames around the images (``dotlib.patches.map_patches``),
but it is what the authors' code does and remains an option (``border="replicate"``).
Then eq. (2) of the paper, :math:`\hat x_\alpha = (1-\alpha)\hat x_0 + \alpha x^*` in
pixel space (``mode="pixel"``), or the operator interpolation
:math:`A_\alpha = (1-\alpha) A + \alpha I` in latent space (``mode="latent"``), where the
patch map is :math:`T_\alpha(v) = (1-\alpha) T(v) + \alpha v`. Zero-shot: the source
Gaussian of each image is fitted on that image's own patches.

Decoding (``decode=``): ``"direct"`` is the paper's :math:`\hat x_0 = D(T(E(x^*)))`.
``"residual"`` decodes only the change that :math:`T` makes,

.. math::
    \hat x_0 = x^* + D(T(E(x^*))) - D(E(x^*)),

so the VAE's own reconstruction error :math:`x^* - D(E(x^*))` (the bound the poster
names as the method's first limitation) is not added to the output: what :math:`T`
does not move stays :math:`x^*` exactly (:math:`T` = identity returns :math:`x^*`).
In the theory's terms it is no longer the push-forward of :math:`p_{x^*}` through one
map of the latent space, but :math:`x^*` plus a decoded latent displacement: the
distribution of :math:`\hat x_0` matches :math:`p_x` only as far as the decoder is
locally linear, and its MSE excess stays the transport cost without the VAE's error.
Here :math:`D(E(x^*))` is decoded from the latent folded by the identity patch map
(:math:`T_1`), computed exactly like :math:`T`, so that the two decodings differ only
by what :math:`T` changes.

Ridge (``ridge=``): ``"relative"`` (default) adds ``eps`` times the mean eigenvalue of
the regularised matrix, so that one ``eps`` means the same in every latent space;
``"absolute"`` with ``eps=1e-7`` is the authors' published setting
(:func:`dotlib.gaussian.ridge_value`).

The authors' conventions (:meth:`LatentOT.authors`): ``border="replicate"``,
``ridge="absolute"`` with ``eps=1e-7``, ``clip_x_hat0=False`` (x̂0 is clipped only by
the α mix) and ``latent="sample"`` (VAE latents drawn from the posterior). With the pixel
encoder these reproduce x̂0 of their ``LatentW2`` to float32 rounding
(``tests/test_parity.py``).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from functools import partial
from typing import Callable, Iterable, Mapping

import torch
from safetensors.torch import save_file

from . import __version__
from .encoders import Encoder, check_images, load_encoder
from .gaussian import (DEFAULT_EPS, DEFAULT_RELATIVE_EPS, RIDGES, GaussianStats, gaussian_map,
                       interpolate_operator, sqrtm_psd, w2)
from .patches import DEFAULT_MAX_PATCHES, check_patch_size, iter_valid_patches, map_patches, valid_patch_stats
from .io import atomic_path, read_safetensors
from .precision import tensors_agree, values_agree
from .validate import check_alpha, check_device, check_patch_dim

__all__ = ["LatentOT", "Operator"]

_FORMAT = "dotlib.LatentOT"
_WHICH = ("source", "target")
_MODES = ("pixel", "latent")
DECODES = ("direct", "residual")
#: Which patches transport moves: the valid ones (default) or all H·W after replicate padding.
BORDERS = ("valid", "replicate")
#: Which latent a VAE posterior gives: its mean (default) or a sample (the authors').
LATENTS = ("mean", "sample")


class Operator:
    """A fitted patch map ``v -> A (v - mean_s) + mean_t (+ w)`` in float64.

    ``noise_root`` is the symmetric square root of the noise covariance (or None):
    ``w = noise_root @ n`` with ``n ~ N(0, I)``. Each α's :math:`A_\alpha` is computed (and
    checked) once, then kept: a batch loop reads no value back from the device for it.
    """

    def __init__(self, matrix: torch.Tensor, mean_s: torch.Tensor, mean_t: torch.Tensor,
                 noise_root: torch.Tensor | None):
        self.matrix, self.mean_s, self.mean_t, self.noise_root = matrix, mean_s, mean_t, noise_root
        self._interpolated: dict[tuple[float, torch.dtype], torch.Tensor] = {}

    def interpolated(self, alpha: float, dtype: torch.dtype) -> torch.Tensor:
        """:math:`A_\alpha` in ``dtype`` (:func:`interpolate_operator`), computed once per (α, dtype)."""
        if (alpha, dtype) not in self._interpolated:
            self._interpolated[(alpha, dtype)] = interpolate_operator(self.matrix, alpha).to(dtype)
        return self._interpolated[(alpha, dtype)]

    @classmethod
    def between(cls, source: GaussianStats, target: GaussianStats, eps: float,
                ridge: str = "absolute") -> "Operator":
        """The operator from ``source``'s Gaussian to ``target``'s (:func:`gaussian_map`)."""
        matrix, noise_cov = gaussian_map(source.cov, target.cov, eps, ridge)
        noise_root = None if noise_cov is None else sqrtm_psd(noise_cov)
        return cls(matrix, source.mean, target.mean, noise_root)

    def patch_function(self, alpha: float, dtype: torch.dtype,
                       generator: torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor]:
        r"""The map of :math:`T_\alpha = (1-\alpha) T + \alpha\,\mathrm{id}` on patch columns ``[B, D, N]``.

        :math:`T_\alpha(v) = A_\alpha (v - \mu_s) + (1-\alpha)\mu_t + \alpha\mu_s + (1-\alpha) w`,
        with :math:`A_\alpha` from :func:`interpolate_operator`; computed in ``dtype`` on
        centred patches (so large latent means cost no precision).
        """
        matrix = self.interpolated(alpha, dtype)
        mean_s = self.mean_s.to(dtype)[:, None]
        shift = ((1.0 - alpha) * self.mean_t + alpha * self.mean_s).to(dtype)[:, None]
        noise = None
        if self.noise_root is not None and alpha != 1.0:
            noise = ((1.0 - alpha) * self.noise_root).to(dtype)

        def move(patches: torch.Tensor) -> torch.Tensor:
            moved = torch.matmul(matrix, patches - mean_s).add_(shift)
            if noise is not None:
                normal = torch.randn(patches.shape, generator=generator, dtype=dtype, device=patches.device)
                moved.add_(torch.matmul(noise, normal))
            return moved

        return move

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}A": self.matrix, f"{prefix}mean_s": self.mean_s, f"{prefix}mean_t": self.mean_t}
        if self.noise_root is not None:
            out[f"{prefix}noise_root"] = self.noise_root
        return out


class LatentOT:
    r"""Fit and apply latent DOT.

    Parameters
    ----------
    encoder : ``"embedded"``, ``"pixel"``, a diffusers folder / HF id, or an :class:`Encoder`.
    patch_size : odd patch side p in latent pixels (the paper: 5, i.e. 4·25 = 100 dims).
    eps : ridge ("sensitivity") of :func:`dotlib.gaussian.gaussian_map`; None: 1e-9 for the
        relative ridge, 1e-7 (the paper's) for the absolute one.
    ridge : ``"relative"`` (``eps`` × mean eigenvalue, the same in every latent space) or
        ``"absolute"`` (the authors' convention; ``eps=1e-7, ridge="absolute"`` replicates them).
    fold_sigma : None for uniform folding, else the width (latent pixels) of a Gaussian folding kernel.
    device : where encoding, statistics and transport run (default: the encoder's, else CPU).
    seed : seeds the noise of the degenerate map (a fresh generator per :meth:`apply` call).
    batch_size : images encoded / decoded at once.
    max_patches : patches moved at once (bounds memory: ``max_patches × C·p²`` floats).
    border : ``"valid"`` (default): transport moves the ``(h-p+1)(w-p+1)`` valid patches, the
        positions the statistics are fitted on; ``"replicate"`` (the authors'): the latent is
        replicate-padded by p//2 and all h·w patches are moved, then folded and cropped.
        Statistics are always fitted on valid patches (as the authors do).
    clip_x_hat0 : True (default): the decoded x̂0 is clamped to [0, 1]. False (the authors'):
        x̂0 is left as decoded and only the α mix of eq. (2) clamps, so the outputs of
        :meth:`apply` (``alpha=0`` too) are in [0, 1] but x̂0 itself is not.
    latent : for an encoder built here from a spec, ``"mean"`` (default) uses the VAE
        posterior mean, ``"sample"`` (the authors') draws from the posterior with a generator
        seeded by ``seed``; deterministic encoders (pixel, ``AutoencoderTiny``) refuse
        ``"sample"``. For an :class:`Encoder` object, None keeps its own setting and a given
        value must agree with it.

    Exact replication of the authors' ``LatentW2`` (see :meth:`authors`): ``border="replicate"``,
    ``ridge="absolute"``, ``eps=1e-7`` (their published runs; 1e-5 is their class default),
    ``clip_x_hat0=False``, ``latent="sample"``, uniform folding, p = 5. What these do not
    match (issue #11's specification of their ``dmax/latent_w2.py`` at commit ``2ea7ce7``):
    when Σs is singular, their pseudo-inverse cuts singular values at √ε and their noise is one vector
    per call added to every patch (here: eigenvalue cut-off, independent noise per patch);
    the latent mode (theirs does not interpolate μt); zero-shot (they refit on the padded
    patches of the whole batch); transport arithmetic (theirs float64, here the latent's
    float32, ~1e-7). Restorations outside [0, 1], which they encode and mix as they are, are
    refused unless :meth:`apply` is called with ``bounded=False``.

    Many processes (``torchrun`` / ``accelerate launch``, after ``init_process_group``):
    each calls ``update`` on its own shard of images, then ``all_reduce()`` and ``fit()``;
    every process then holds the operator of all images together (rank 0 saves it).
    """

    def __init__(self, encoder: str | Path | Encoder = "embedded", patch_size: int = 5,
                 eps: float | None = None, ridge: str = "relative", fold_sigma: float | None = None, device: str | torch.device | None = None, seed: int = 0,
                 batch_size: int = 8, max_patches: int = DEFAULT_MAX_PATCHES, border: str = "valid",
                 clip_x_hat0: bool = True, latent: str | None = None):
        if border not in BORDERS:
            raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
        if latent is not None and latent not in LATENTS:
            raise ValueError(f"latent must be one of {', '.join(LATENTS)} (or None), got {latent!r}")
        if isinstance(encoder, Encoder):
            if device is not None and check_device(device) != encoder.device:
                raise ValueError(f"device {device} differs from the encoder's device {encoder.device}")
            if latent is not None and (latent == "sample") != bool(getattr(encoder, "sample", False)):
                raise ValueError(f"latent={latent!r} disagrees with the given encoder {encoder.name!r}, which "
                                 f"{'samples its latents' if latent == 'mean' else 'has no posterior sampling'}; "
                                 f"build it with load_encoder(..., sample=...) or pass latent=None")
            self.encoder = encoder
        else:
            self.encoder = load_encoder(encoder, device=device if device is not None else "cpu",
                                        sample=latent == "sample", seed=seed)
        self.border, self.clip_x_hat0 = border, clip_x_hat0
        self.latent = "sample" if getattr(self.encoder, "sample", False) else "mean"
        self.patch_size = check_patch_size(patch_size)
        if ridge not in RIDGES:
            raise ValueError(f"ridge must be one of {', '.join(RIDGES)}, got {ridge!r}")
        if eps is None:
            eps = DEFAULT_RELATIVE_EPS if ridge == "relative" else DEFAULT_EPS
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        self._check_fold_sigma(fold_sigma, check_patch_size(patch_size))
        if not isinstance(clip_x_hat0, bool):
            raise TypeError(f"clip_x_hat0 must be True or False, got {clip_x_hat0!r}")
        if batch_size < 1 or max_patches < 1:
            raise ValueError(f"batch_size and max_patches must be >= 1, got {batch_size}, {max_patches}")
        self.eps, self.ridge, self.fold_sigma, self.seed = float(eps), ridge, fold_sigma, int(seed)
        self.batch_size, self.max_patches = int(batch_size), int(max_patches)
        self.device = self.encoder.device
        self.dim = check_patch_dim(self.encoder.latent_channels, self.patch_size, f"encoder {self.encoder.name!r}")
        self.source = GaussianStats(self.dim, self.device)
        self.target = GaussianStats(self.dim, self.device)
        self.operator: Operator | None = None
        self.latent_w2: float | None = None

    @staticmethod
    def _check_fold_sigma(fold_sigma: float | None, patch_size: int) -> None:
        """A Gaussian folding width wide enough that every pixel keeps a weight: at a border, a
        pixel's nearest patch centre is up to (p//2)·√2 latent pixels away, and a weight
        exp(-d²/2σ²) below float32's range there would make the folded value 0/0."""
        if fold_sigma is None:
            return
        least = (patch_size // 2) * math.sqrt(2.0) / 12.0
        if isinstance(fold_sigma, bool) or not isinstance(fold_sigma, (int, float)) or not fold_sigma >= least:
            raise ValueError(f"fold_sigma must be None (uniform folding) or a width of at least {least:.3g} latent "
                             f"pixels for {patch_size}x{patch_size} patches (narrower Gaussian weights vanish at "
                             f"the border), got {fold_sigma!r}")

    def __repr__(self) -> str:
        return (f"LatentOT(encoder={self.encoder.name!r}, patch_size={self.patch_size}, eps={self.eps}, "
                f"ridge={self.ridge!r}, border={self.border!r}, "
                f"source={self.source.count}, target={self.target.count}, fitted={self.operator is not None})")

    # ------------------------------------------------------------------ fitting

    def _check_size(self, images: torch.Tensor) -> None:
        height, width = images.shape[-2:]
        latent = self.encoder.latent_size((height, width))
        if min(latent) < self.patch_size:
            raise ValueError(
                f"images of size {height}x{width} give {latent[0]}x{latent[1]} latents with encoder "
                f"{self.encoder.name!r} (factor {self.encoder.factor}), smaller than a "
                f"{self.patch_size}x{self.patch_size} patch; use images of at least "
                f"{self.patch_size * self.encoder.factor} pixels per side"
            )

    def _latents(self, images: torch.Tensor) -> Iterable[torch.Tensor]:
        for batch in images.split(self.batch_size):
            yield self.encoder.encode(batch)

    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """All valid p×p latent patches of ``images [B, 3, H, W]``: ``float32 [N, C·p²]`` (the fitted samples)."""
        check_images(images)
        self._check_size(images)
        return torch.cat([block for latents in self._latents(images)
                          for block in iter_valid_patches(latents, self.patch_size, self.max_patches)])

    def update(self, images: torch.Tensor, which: str = "source") -> "LatentOT":
        """Add the valid p×p patches of the latents of ``images [B, 3, H, W]`` (in [0, 1]) to ``which``."""
        if which not in _WHICH:
            raise ValueError(f"which must be 'source' or 'target', got {which!r}")
        check_images(images)
        self._check_size(images)
        for latents in self._latents(images):
            self.update_latents(latents, which)
        return self

    def update_latents(self, latents: torch.Tensor, which: str = "source") -> "LatentOT":
        """Add the valid p×p patches of latents ``[B, C, h, w]`` already encoded by this encoder to ``which``."""
        if which not in _WHICH:
            raise ValueError(f"which must be 'source' or 'target', got {which!r}")
        if not isinstance(latents, torch.Tensor) or latents.ndim != 4 \
                or latents.shape[1] != self.encoder.latent_channels or min(latents.shape[-2:]) < self.patch_size:
            raise ValueError(f"latents must be [B, {self.encoder.latent_channels}, h >= {self.patch_size}, "
                             f"w >= {self.patch_size}], got {tuple(getattr(latents, 'shape', ()))}")
        valid_patch_stats(latents.to(self.device), self.patch_size, self.max_patches,
                          into=self.source if which == "source" else self.target)
        self.operator, self.latent_w2 = None, None
        return self

    def all_reduce(self, group=None) -> "LatentOT":
        """Sum the statistics of all ``torch.distributed`` processes (each must call it), then refit."""
        self.source.all_reduce(group)
        self.target.all_reduce(group)
        self.operator, self.latent_w2 = None, None
        return self

    def fit(self) -> float:
        """Compute the operator from the statistics; returns the squared latent W2 between them."""
        for which, stats in (("source", self.source), ("target", self.target)):
            if stats.count < 2:
                raise ValueError(
                    f"{which} statistics hold {stats.count} patches; call update(images, which={which!r}) first"
                )
            if stats.count <= self.dim:
                warnings.warn(
                    f"{which} statistics hold {stats.count} patches for {self.dim}-dimensional patches "
                    f"(C·p²): fewer patches than dimensions, so the {which} covariance is singular "
                    f"(rank <= {stats.count - 1}); fit on more or larger images, or use a smaller patch_size",
                    UserWarning, stacklevel=2)
        self.operator = Operator.between(self.source, self.target, self.eps, self.ridge)
        self.latent_w2 = w2(self.source.mean, self.source.cov, self.target.mean, self.target.cov)
        return self.latent_w2

    @classmethod
    def authors(cls, encoder: str | Path | Encoder = "embedded", patch_size: int = 5, eps: float = DEFAULT_EPS,
                **options) -> "LatentOT":
        """A LatentOT with the authors' conventions (Adrai et al.'s ``LatentW2`` as ``main.py`` runs it).

        ``border="replicate"``, ``ridge="absolute"``, ``eps=1e-7``, ``clip_x_hat0=False``, and
        ``latent="sample"`` for an encoder given as a VAE spec (the pixel encoder has no
        posterior; an :class:`Encoder` object keeps its own setting). ``options`` are the
        other arguments of :class:`LatentOT` and override these. Their published runs use
        ``stabilityai/sd-vae-ft-ema`` (a Hugging Face id, read from the local cache).
        """
        settings = dict(border="replicate", ridge="absolute", clip_x_hat0=False)
        if not isinstance(encoder, Encoder) and str(encoder) != "pixel":
            settings["latent"] = "sample"
        settings.update(options)
        return cls(encoder, patch_size=patch_size, eps=eps, **settings)

    @classmethod
    def from_stats(cls, encoder: Encoder, source: GaussianStats, target: GaussianStats,
                   **options) -> "LatentOT":
        """A fitted operator from statistics gathered elsewhere (copies of ``source`` and ``target``).

        The statistics must be of this encoder's valid p×p latent patches (``dim = C·p²``);
        the study merges per-photo statistics this way for each cross-fitting fold.
        """
        model = cls(encoder, **options)
        for which, stats in (("source", source), ("target", target)):
            if not isinstance(stats, GaussianStats) or stats.dim != model.dim:
                raise ValueError(f"{which} must be GaussianStats of dimension {model.dim} "
                                 f"(C·p² for this encoder and patch size), got {stats!r}")
        model.source = GaussianStats(model.dim, model.device).merge(source)
        model.target = GaussianStats(model.dim, model.device).merge(target)
        model.fit()
        return model

    @property
    def fitted(self) -> bool:
        return self.operator is not None

    # ---------------------------------------------------------------- transport

    def _check_fitted(self, zero_shot: bool) -> None:
        if zero_shot and self.target.count < 2:
            raise RuntimeError("zero-shot transport needs target statistics: call update(images, which='target')")
        if not zero_shot and self.operator is None:
            raise RuntimeError("LatentOT is not fitted: call update(...) for source and target, then fit()")

    def _check_latents(self, latents: torch.Tensor, images: torch.Tensor) -> None:
        """Raise unless ``latents`` can be this encoder's ``[B, C, h, w]`` of ``images [B, 3, H, W]``."""
        expected = (images.shape[0], self.encoder.latent_channels, *self.encoder.latent_size(images.shape[-2:]))
        if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != expected:
            raise ValueError(f"latents must be the encoder's latents of the images, {list(expected)}, "
                             f"got {tuple(getattr(latents, 'shape', ()))}")

    def _own_operators(self, latents: torch.Tensor) -> list[Operator]:
        """Zero-shot: per image, the operator from its own valid patches' Gaussian to the target."""
        return [Operator.between(valid_patch_stats(latent[None], self.patch_size, self.max_patches),
                                 self.target, self.eps, self.ridge) for latent in latents]

    def _move(self, latents: torch.Tensor, alpha: float, generator: torch.Generator,
              own: list[Operator] | None) -> torch.Tensor:
        r"""Latents ``[B, C, h, w]`` with every patch moved by :math:`T_\alpha` and folded back (same shape).

        By the fitted operator, or with ``own`` by each image's own (zero-shot). The valid
        patches, or with ``border="replicate"`` all h·w patches of the padded latent.
        """
        pad = self.border == "replicate"
        if own is None:
            function = self.operator.patch_function(alpha, latents.dtype, generator)
            return map_patches(latents, self.patch_size, function, self.fold_sigma, self.max_patches, pad=pad)
        return torch.cat([
            map_patches(latent[None], self.patch_size, operator.patch_function(alpha, latents.dtype, generator),
                        self.fold_sigma, self.max_patches, pad=pad)
            for latent, operator in zip(latents, own)
        ])

    def _decoded(self, latents: torch.Tensor, alpha: float, size: tuple[int, int], generator: torch.Generator,
                 own: list[Operator] | None) -> torch.Tensor:
        r""":math:`D(T_\alpha(z))` of latents ``[B, C, h, w]``, cropped to ``size``: ``float32 [B, 3, H, W]``,
        clamped unless ``clip_x_hat0=False``; α = 1 gives the residual decoding's reference."""
        return self.encoder.decode(self._move(latents, alpha, generator, own), size, clamp=self.clip_x_hat0)

    def _generator(self) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(self.seed)

    @staticmethod
    def _fill(out: dict[str, torch.Tensor], plan: dict[str, list[float]], x_star: torch.Tensor, mode: str,
              decoded: Callable[[float], torch.Tensor], reference: torch.Tensor | None) -> None:
        r"""Write the x̂α of one chunk ``x_star [b, 3, H, W]`` into ``out[decode] [len(α), b, 3, H, W]``.

        ``decoded(α)``: :math:`D(T_\alpha(z))` of the chunk; ``reference``: its :math:`D(T_1(z))`,
        or None (decoded if needed). In pixel mode one :math:`D(T_0(z))` serves every α and decoding.
        """
        moved = None
        for decode, alphas in plan.items():
            if mode == "latent":
                for index, alpha in enumerate(alphas):
                    image = decoded(alpha)
                    if decode == "residual":
                        reference = decoded(1.0) if reference is None else reference
                        image = x_star + (image - reference)
                    out[decode][index] = image.clamp(0.0, 1.0)
            elif any(alpha != 1.0 for alpha in alphas):
                moved = decoded(0.0) if moved is None else moved
                if decode == "residual":
                    reference = decoded(1.0) if reference is None else reference
                x_hat0 = moved if decode == "direct" else x_star + (moved - reference)
                for index, alpha in enumerate(alphas):   # eq. (2), clamped; α = 1 is x* exactly
                    out[decode][index] = ((1.0 - alpha) * x_hat0 + alpha * x_star).clamp_(0.0, 1.0) \
                        if alpha != 1.0 else x_star.clamp(0.0, 1.0)
            else:
                out[decode][:] = x_star.clamp(0.0, 1.0)

    def apply(self, x_star: torch.Tensor, sweeps: Mapping[str, Iterable[float]], *,
              latents: torch.Tensor | None = None, mode: str = "pixel", zero_shot: bool = False,
              generator: torch.Generator | None = None, reference: torch.Tensor | None = None,
              bounded: bool = True) -> dict[str, torch.Tensor]:
        r"""Transport restorations ``x_star [B, 3, H, W]`` (in [0, 1]): ``{decode: float32 [len(α), B, 3, H, W]}``.

        ``sweeps`` maps decodings to their α, e.g. ``{"direct": [0.0, 0.5], "residual": [0.0]}``:
        ``"direct"`` is the paper's :math:`\hat x_0 = D(T(E(x^*)))`, ``"residual"``
        :math:`x^* + D(T(E(x^*))) - D(T_1(E(x^*)))` (module notes). ``mode="pixel"``: eq. (2),
        :math:`\hat x_\alpha = (1-\alpha)\hat x_0 + \alpha x^*` clamped to [0, 1], from one transport
        for every α and decoding (α = 1 is :math:`x^*` exactly); ``mode="latent"``: the decoding of
        the latent moved by :math:`T_\alpha`, clamped (``"direct"`` at α = 1 is D(E(x*)), not x*).
        ``latents``: E(x*) ``[B, C, h, w]`` by this encoder, not encoded again. ``reference``:
        :math:`D(T_1(E(x^*)))` ``[B, 3, H, W]`` for ``"residual"``, to share one between operators
        (``{"direct": [1.0]}`` in latent mode gives it when ``clip_x_hat0``); default: decoded here.
        ``zero_shot``: each image's source Gaussian from its own patches. The degenerate map's noise
        comes from ``generator`` (default: a fresh one seeded with ``seed``). Outputs are on the
        device of ``x_star``; images are moved ``batch_size`` at a time. ``bounded=False`` takes
        ``x_star`` unclipped (any finite values), as the authors encode and mix it; outputs are
        clamped to [0, 1] all the same (α = 1 gives x* clamped).
        """
        plan = _plan(sweeps, mode)
        check_images(x_star, "x_star", bounded=bounded)
        self._check_size(x_star)
        self._check_fitted(zero_shot)
        if latents is not None:
            self._check_latents(latents, x_star)
        if reference is not None and reference.shape != x_star.shape:
            raise ValueError(f"reference must be shaped like x_star, {tuple(x_star.shape)}, "
                             f"got {tuple(reference.shape)}")
        out = {decode: torch.empty(len(alphas), *x_star.shape, dtype=torch.float32, device=x_star.device)
               for decode, alphas in plan.items()}
        generator = generator if generator is not None else self._generator()
        size = tuple(x_star.shape[-2:])
        for start in range(0, x_star.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            z = self.encoder.encode(x_star[rows], bounded=bounded) if latents is None else latents[rows].to(self.device)
            own = self._own_operators(z) if zero_shot else None
            self._fill({decode: images[:, rows] for decode, images in out.items()}, plan,
                       x_star[rows].to(self.device, torch.float32), mode,
                       partial(self._decoded, z, size=size, generator=generator, own=own),
                       None if reference is None else reference[rows].to(self.device, torch.float32))
        return out

    def sweep(self, images: torch.Tensor, alphas: Iterable[float], mode: str = "pixel",
              zero_shot: bool = False, generator: torch.Generator | None = None,
              decode: str = "direct") -> torch.Tensor:
        r""":meth:`apply` with one decoding: ``float32 [len(alphas), B, 3, H, W]`` (``images`` = :math:`x^*`)."""
        return self.apply(images, {decode: alphas}, mode=mode, zero_shot=zero_shot, generator=generator)[decode]

    def transport(self, images: torch.Tensor, alpha: float = 0.0, mode: str = "pixel",
                  zero_shot: bool = False, generator: torch.Generator | None = None,
                  decode: str = "direct") -> torch.Tensor:
        r""":meth:`apply` with one decoding and one α: ``images`` (:math:`x^*`) improved, same shape, float32.

        ``alpha = 0`` (default) gives :math:`\hat x_0`; ``alpha = 1`` in pixel mode a copy of ``images``.
        """
        return self.sweep(images, [alpha], mode=mode, zero_shot=zero_shot, generator=generator, decode=decode)[0]

    # -------------------------------------------------------------- persistence

    def metadata(self) -> dict:
        """What :meth:`save` records besides tensors."""
        return {
            "format": _FORMAT,
            "dotlib_version": __version__,
            "encoder": self.encoder.name,
            "encoder_fingerprint": self.encoder.fingerprint,
            "factor": self.encoder.factor,
            "latent_channels": self.encoder.latent_channels,
            "patch_size": self.patch_size,
            "eps": self.eps,
            "ridge": self.ridge,
            "border": self.border,
            "clip_x_hat0": self.clip_x_hat0,
            "latent": self.latent,
            "fold_sigma": self.fold_sigma,
            "seed": self.seed,
            "source_count": self.source.count,
            "target_count": self.target.count,
            "latent_w2": self.latent_w2,
        }

    def save(self, path: str | Path) -> Path:
        """Write statistics, operator and metadata to one safetensors file; returns its path.

        An existing file with the same metadata and tensors that agree within
        :data:`dotlib.precision.TENSOR_PRECISION` is kept byte for byte (a refit on another CPU
        leaves a committed operator alone).
        """
        path = Path(path)
        tensors = {f"source.{k}": v for k, v in self.source.state_dict().items()}
        tensors.update({f"target.{k}": v for k, v in self.target.state_dict().items()})
        if self.operator is not None:
            tensors.update(self.operator.tensors("operator."))
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        metadata = {"dotlib": json.dumps(self.metadata())}
        if path.is_file() and self._same_file(path, metadata, tensors):
            return path
        with atomic_path(path) as temporary:  # the old file or the complete new one, never half
            save_file(tensors, str(temporary), metadata=metadata)
        return path

    @staticmethod
    def _same_file(path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> bool:
        """Whether the file at ``path`` holds ``metadata`` and ``tensors`` up to the declared precision."""
        try:
            old_metadata, old_tensors = read_safetensors(path)
        except ValueError:
            return False
        old_meta, new_meta = json.loads(old_metadata.get("dotlib", "{}")), json.loads(metadata["dotlib"])
        w2_old, w2_new = old_meta.pop("latent_w2", None), new_meta.pop("latent_w2", None)
        same_w2 = w2_old == w2_new or (w2_old is not None and w2_new is not None
                                       and values_agree("latent_w2", w2_old, w2_new))
        return old_meta == new_meta and same_w2 and tensors_agree(old_tensors, tensors)

    @classmethod
    def load(cls, path: str | Path, encoder: str | Path | Encoder | None = None,
             device: str | torch.device | None = None, **options) -> "LatentOT":
        """Read a :meth:`save` file. ``encoder=None`` loads the recorded encoder; a given one must match it.

        A given encoder matches by name, factor and channels, or, for a VAE folder that
        moved, by its weights' fingerprint. ``options`` (``batch_size``, ``max_patches``) are
        runtime settings, not stored. A damaged or altered file raises ``ValueError`` naming it.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no LatentOT file at {path}")
        raw, tensors = read_safetensors(path)
        meta = _file_metadata(path, raw.get("dotlib"))
        _check_file_tensors(path, meta, tensors)
        sampling = dict(sample=meta.get("latent") == "sample", seed=meta["seed"])  # files before 'latent': mean
        fitted_with = meta.get("encoder_fingerprint")
        if encoder is None:
            recorded_folder = Path(meta["encoder"])
            if recorded_folder.is_absolute() and not recorded_folder.exists():
                raise FileNotFoundError(
                    f"{path} was fitted with the encoder folder {recorded_folder}, which does not exist "
                    f"any more; pass encoder=<folder> (matched by its weights' fingerprint) for the VAE's "
                    f"new place (recorded fingerprint: {fitted_with})")
            encoder = load_encoder(meta["encoder"], device=device if device is not None else "cpu", **sampling)
        elif not isinstance(encoder, Encoder):
            encoder = load_encoder(encoder, device=device if device is not None else "cpu", **sampling)
        recorded = (meta["encoder"], meta["factor"], meta["latent_channels"])
        given = (encoder.name, encoder.factor, encoder.latent_channels)
        given_weights = encoder.fingerprint
        same_weights = fitted_with is not None and fitted_with == given_weights
        if recorded != given and not (same_weights and recorded[1:] == given[1:]):
            raise ValueError(
                f"{path} was fitted with encoder {recorded[0]!r} (factor {recorded[1]}, {recorded[2]} latent "
                f"channels, weights' fingerprint {fitted_with}) but encoder {given[0]!r} (factor {given[1]}, "
                f"{given[2]} channels, fingerprint {given_weights}) was given; pass encoder=None to load the "
                f"recorded one, or the recorded VAE's folder wherever it is now (matched by its fingerprint)"
            )
        if fitted_with is not None and given_weights is not None and fitted_with != given_weights:
            raise ValueError(
                f"{path} was fitted with other weights of encoder {encoder.name!r} (fingerprint "
                f"{fitted_with}, now {given_weights}): the latent space changed, so refit the operator"
            )
        try:
            model = cls(encoder, patch_size=meta["patch_size"], eps=meta["eps"], ridge=meta.get("ridge", "absolute"),
                        fold_sigma=meta.get("fold_sigma"), border=meta.get("border", "valid"),
                        clip_x_hat0=meta.get("clip_x_hat0", True),
                        seed=meta["seed"], device=device, **options)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: cannot rebuild the LatentOT it records: {error}") from error
        model.source = GaussianStats.from_state_dict(
            {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("source.")}, model.device)
        model.target = GaussianStats.from_state_dict(
            {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("target.")}, model.device)
        if "operator.A" in tensors:
            op = {k.split(".", 1)[1]: v.to(model.device) for k, v in tensors.items() if k.startswith("operator.")}
            model.operator = Operator(op["A"], op["mean_s"], op["mean_t"], op.get("noise_root"))
            model.latent_w2 = meta.get("latent_w2")
        return model


# ------------------------------------------------------------- file checks (load)

#: Metadata every LatentOT file records, with its JSON type.
_REQUIRED_METADATA = {"encoder": str, "factor": int, "latent_channels": int, "patch_size": int,
                      "eps": (int, float), "seed": int}

#: Metadata a LatentOT file may record (older files lack some), with its JSON type (None: null).
_OPTIONAL_METADATA = {"dotlib_version": str, "encoder_fingerprint": (str, type(None)), "ridge": str, "border": str,
                      "clip_x_hat0": bool, "latent": str, "fold_sigma": (int, float, type(None)), "source_count": int,
                      "target_count": int, "latent_w2": (int, float, type(None))}

#: The dtype of each kind of tensor a LatentOT file holds (statistics and operator in float64).
_TENSOR_DTYPES = {"count": torch.int64, "mean": torch.float64, "m2": torch.float64, "A": torch.float64,
                  "mean_s": torch.float64, "mean_t": torch.float64, "noise_root": torch.float64}


def _plan(sweeps: Mapping[str, Iterable[float]], mode: str) -> dict[str, list[float]]:
    """The checked ``sweeps`` of :meth:`LatentOT.apply`: ``{decode: [float α, ...]}``."""
    if mode not in _MODES:
        raise ValueError(f"mode must be 'pixel' or 'latent', got {mode!r}")
    if not isinstance(sweeps, Mapping) or not sweeps:
        raise ValueError(f"sweeps must map decodings ({', '.join(DECODES)}) to alphas, got {sweeps!r}")
    plan = {}
    for decode, alphas in sweeps.items():
        if decode not in DECODES:
            raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {decode!r}")
        plan[decode] = [check_alpha(alpha) for alpha in alphas]
        if not plan[decode]:
            raise ValueError(f"the α of decoding {decode!r} must be a non-empty list, got []")
    return plan


def _file_metadata(path: Path, raw: str | None) -> dict:
    """The ``dotlib`` metadata of a LatentOT file, checked; ``ValueError`` naming ``path`` if bad."""
    if raw is None:
        raise ValueError(f"{path} is not a LatentOT file (no {_FORMAT} metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its LatentOT metadata is not valid JSON ({error}); the file is damaged "
                         f"or was altered, so save the operator again") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a LatentOT file (no {_FORMAT} metadata)")
    problems = [f"{key} missing" if key not in meta else f"{key}={meta[key]!r} is not {_kind(kind)}"
                for key, kind in _REQUIRED_METADATA.items()
                if key not in meta or isinstance(meta[key], bool) or not isinstance(meta[key], kind)]
    problems += [f"{key}={meta[key]!r} is not {_kind(kind)}" for key, kind in _OPTIONAL_METADATA.items()
                 if key in meta and (not isinstance(meta[key], kind) or (kind is not bool and isinstance(meta[key], bool)))]
    if problems:
        raise ValueError(f"{path}: its LatentOT metadata is damaged or was altered ({'; '.join(problems)})")
    return meta


def _kind(kind) -> str:
    """A JSON type as messages name it: ``int``, ``int or float``, ``str or null``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _check_file_tensors(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Names, shapes, finiteness and counts of a LatentOT file's tensors; ``ValueError`` naming ``path``."""
    dim = meta["latent_channels"] * meta["patch_size"] ** 2
    shapes = {f"{which}.{key}": shape for which in _WHICH
              for key, shape in (("count", ()), ("mean", (dim,)), ("m2", (dim, dim)))}
    if any(key.startswith("operator.") for key in tensors):
        shapes.update({"operator.A": (dim, dim), "operator.mean_s": (dim,), "operator.mean_t": (dim,)})
        if "operator.noise_root" in tensors:
            shapes["operator.noise_root"] = (dim, dim)
    problems = [f"{key} missing" for key in shapes if key not in tensors]
    problems += [f"unexpected tensor {key}" for key in tensors if key not in shapes]
    problems += [f"{key} has shape {tuple(tensors[key].shape)}, expected {shape}"
                 for key, shape in shapes.items() if key in tensors and tuple(tensors[key].shape) != shape]
    problems += [f"{key} is {tensors[key].dtype}, expected {_TENSOR_DTYPES[key.split('.', 1)[1]]}"
                 for key in shapes if key in tensors and tensors[key].dtype != _TENSOR_DTYPES[key.split(".", 1)[1]]]
    problems += [f"{key} holds NaN or infinite values" for key, value in tensors.items()
                 if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    for which in _WHICH:
        count, recorded = tensors.get(f"{which}.count"), meta.get(f"{which}_count")
        if count is not None and count.numel() == 1 and recorded is not None and int(count) != recorded:
            problems.append(f"{which}.count is {int(count)} but the metadata records {recorded}")
    if problems:
        raise ValueError(
            f"{path} is damaged or was altered: {'; '.join(problems)} (patches of {meta['latent_channels']} "
            f"channels x {meta['patch_size']}² = {dim} dimensions); save the operator again")
