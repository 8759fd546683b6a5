r"""Exact optimal transport between Gaussian laws, in float64.

Everything here works on covariance matrices ``[D, D]`` and mean vectors ``[D]``
given as numpy arrays or torch tensors; a function returns numpy when all its array
inputs are numpy, and torch (on the device of its first tensor input) otherwise.
Computation is always float64.

Notation: the source law is :math:`\mathcal N(\mu_s, \Sigma_s)` (restorations,
:math:`p_{x^*}`), the target law :math:`\mathcal N(\mu_t, \Sigma_t)` (natural images,
:math:`p_x`). The transport map is

.. math::
    T(v) = A (v - \mu_s) + \mu_t \; (+\, w,\; w \sim \mathcal N(0, \Sigma_w)
    \text{ independent, in the degenerate case}).

References
----------
- M. Knott, C. S. Smith, "On the optimal mapping of distributions", J. Optim. Theory
  Appl. 43, 1984 (the map :math:`A`).
- D. C. Dowson, B. V. Landau, "The Fréchet distance between multivariate normal
  distributions", J. Multivariate Anal. 12, 1982; C. R. Givens, R. M. Shortt, "A class
  of Wasserstein metrics for probability distributions", Michigan Math. J. 31, 1984;
  M. Gelbrich, Math. Nachr. 147, 1990 (the distance).
- D. Freirich, T. Michaeli, R. Meir, "A Theory of the Distortion-Perception Tradeoff
  in Wasserstein Space", NeurIPS 2021, eq. (19) (the map from a singular source).
- T. Adrai, G. Ohayon, M. Elad, T. Michaeli, "Deep Optimal Transport", NeurIPS 2023
  (the regularisation conventions, "sensitivity" :math:`\varepsilon`).
- T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm
  for computing sample variances", 1979 (merging statistics).
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import torch
import torch.distributed as dist

from .validate import values_are_checked

__all__ = [
    "GaussianStats",
    "DEFAULT_EPS",
    "DEFAULT_RELATIVE_EPS",
    "RIDGES",
    "degenerate_ot_map",
    "frechet",
    "gaussian_map",
    "interpolate_operator",
    "ot_map",
    "ridge_value",
    "root_factor",
    "sqrtm_psd",
    "w2",
]

Array = Union[np.ndarray, torch.Tensor]

DEFAULT_EPS = 1e-7
"""Ridge ("sensitivity") of the authors' published runs, absolute (``ridge="absolute"``)."""

DEFAULT_RELATIVE_EPS = 1e-9
"""Scale-aware ridge (``ridge="relative"``): a fraction of the regularised matrix's mean eigenvalue.

The authors' absolute 1e-7 was set for Stable Diffusion's latents (variances of order 10,
so the inner matrix of :func:`ot_map` has eigenvalues of order 100): relative to that
scale it is about 1e-9. The relative ridge keeps that weight in any latent space; an
absolute one weighs 2500x more on a latent space with variances of order 0.2.
"""

RIDGES = ("absolute", "relative")

_SYMMETRY_RTOL = 1e-6
#: A covariance may have eigenvalues down to ``-_PSD_RTOL · D · max|λ|`` (rounding), no lower.
_PSD_RTOL = 1e-8


# --------------------------------------------------------------------------- inputs


def _to_tensor(name: str, value: Any, device: torch.device | None, check_finite: bool = True) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got numpy dtype {value.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
    elif isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got torch dtype {value.dtype}")
        tensor = value.detach()
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")
    tensor = tensor.to(device=device if device is not None else tensor.device, dtype=torch.float64)
    if check_finite and not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def _target(*values: Any) -> tuple[bool, torch.device]:
    """(return numpy?, device) for a call with these array arguments."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors:
        return False, tensors[0].device
    return True, torch.device("cpu")


def _out(tensor: torch.Tensor, as_numpy: bool) -> Array:
    return tensor.cpu().numpy() if as_numpy else tensor


def _covariance(name: str, value: Any, device: torch.device) -> torch.Tensor:
    """A validated, exactly symmetrised float64 covariance ``[D, D]``, positive semi-definite up to rounding."""
    matrix = _to_tensor(name, value, device)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix [D, D], got shape {tuple(matrix.shape)}")
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    scale = matrix.abs().max().item()
    asymmetry = (matrix - matrix.T).abs().max().item()
    if asymmetry > _SYMMETRY_RTOL * max(scale, torch.finfo(torch.float64).tiny):
        raise ValueError(
            f"{name} is not symmetric: max |M - M^T| = {asymmetry:.3g} for max |M| = {scale:.3g} "
            f"(relative tolerance {_SYMMETRY_RTOL:g})"
        )
    matrix = 0.5 * (matrix + matrix.T)
    _check_psd(name, matrix, scale)
    return matrix


def _check_psd(name: str, matrix: torch.Tensor, scale: float) -> None:
    """Raise unless ``λ_min(matrix) >= -tol · max|λ|`` with ``tol = _PSD_RTOL · D``.

    Fast path: a Cholesky factorisation of ``matrix + tol · max|M_ij| I`` (``max|M_ij| <= max|λ|``);
    only if it fails are the eigenvalues computed, to decide and to report them.
    """
    tol = _PSD_RTOL * matrix.shape[0]
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    if scale > 0 and torch.linalg.cholesky_ex(matrix + (tol * scale) * eye)[1].item() == 0:
        return
    values = torch.linalg.eigvalsh(matrix)
    lowest, largest = values.min().item(), values.abs().max().item()
    if lowest < -tol * largest:
        raise ValueError(
            f"{name} is not positive semi-definite, so it is no covariance: its smallest eigenvalue is "
            f"{lowest!r} for a largest |eigenvalue| of {largest!r} (rounding allows down to "
            f"{-tol * largest:.3g}); {int((values < -tol * largest).sum())} of {matrix.shape[0]} "
            f"eigenvalues are negative beyond rounding"
        )


def _mean(name: str, value: Any, dim: int, device: torch.device) -> torch.Tensor:
    vector = _to_tensor(name, value, device)
    if vector.ndim != 1 or vector.shape[0] != dim:
        raise ValueError(f"{name} must be a vector [{dim}], got shape {tuple(vector.shape)}")
    return vector


def _same_dim(cov_s: torch.Tensor, cov_t: torch.Tensor) -> None:
    if cov_s.shape != cov_t.shape:
        raise ValueError(
            f"cov_s and cov_t must have the same dimension, got {tuple(cov_s.shape)} and {tuple(cov_t.shape)}"
        )


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not (eps >= 0.0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return eps


def _check_ridge(ridge: str) -> str:
    if ridge not in RIDGES:
        raise ValueError(f"ridge must be one of {', '.join(RIDGES)}, got {ridge!r}")
    return ridge


def ridge_value(eps: float, matrix: torch.Tensor, ridge: str) -> float:
    r"""The ridge added to ``matrix [D, D]``: ``eps`` (absolute) or ``eps · tr(matrix) / D`` (relative).

    The relative ridge is a fixed fraction of the mean eigenvalue, so it means the same
    whatever the scale of the latent space (multiplying the data by :math:`s` multiplies
    a covariance by :math:`s^2`, the inner matrix of :func:`ot_map` by :math:`s^4`, and
    its relative ridge with them).
    """
    if _check_ridge(ridge) == "absolute":
        return eps
    return eps * max(matrix.trace().item(), 0.0) / matrix.shape[0]


# ------------------------------------------------------------------ matrix functions


def _sym(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric part of ``[..., D, D]``."""
    return 0.5 * (matrix + matrix.mT)


def _spectral(vectors: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``V diag(values) V^T`` (symmetric by construction)."""
    return _sym((vectors * values) @ vectors.T)


def _rank_tolerance(values: torch.Tensor, eps: float) -> torch.Tensor:
    """Eigenvalues ``[..., D]`` at or below this ``[..., 1]`` count as 0: ``max(eps, D·machine-eps·λ_max)``."""
    largest = values.amax(dim=-1, keepdim=True).clamp_min(0.0)
    return (largest * (values.shape[-1] * torch.finfo(torch.float64).eps)).clamp_min(eps)


def sqrtm_psd(matrix: Array, eps: float = 0.0) -> Array:
    r"""Square root of a symmetric positive semi-definite matrix ``[D, D]``.

    .. math::
        M^{1/2} = V \operatorname{diag}\big(\sqrt{\max(\lambda_i, 0) + \varepsilon}\big) V^\top,
        \qquad M = V \operatorname{diag}(\lambda) V^\top

    (symmetric eigendecomposition). Eigenvalues are clipped at 0, so rounding noise
    such as :math:`\lambda = -10^{-17}` does no harm; the ridge ``eps`` (default 0,
    i.e. the exact root) is added to every clipped eigenvalue, which equals taking the
    root of :math:`M_+ + \varepsilon I`.
    """
    as_numpy, device = _target(matrix)
    eps = _check_eps(eps)
    values, vectors = torch.linalg.eigh(_covariance("matrix", matrix, device))
    return _out(_spectral(vectors, (values.clamp_min(0.0) + eps).sqrt()), as_numpy)


# ---------------------------------------------------------------------- distances


def _matrices(name: str, value: Any, device: torch.device) -> torch.Tensor:
    """Float64 square matrices ``[..., D, D]``, D >= 1 (shape and finiteness checked, nothing else)."""
    matrix = _to_tensor(name, value, device)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2] or matrix.shape[-1] == 0:
        raise ValueError(f"{name} must hold square matrices [..., D, D], D >= 1, got shape {tuple(matrix.shape)}")
    return matrix


def _vectors(name: str, value: Any, dim: int, device: torch.device) -> torch.Tensor:
    """Float64 vectors ``[..., dim]``."""
    vector = _to_tensor(name, value, device)
    if vector.ndim < 1 or vector.shape[-1] != dim:
        raise ValueError(f"{name} must hold vectors [..., {dim}], got shape {tuple(vector.shape)}")
    return vector


def _root_factor(sigma: torch.Tensor) -> torch.Tensor:
    """:func:`root_factor` of float64 ``[..., D, D]``: ``[..., D, r]``."""
    lower, info = torch.linalg.cholesky_ex(sigma)
    if not info.any():
        return lower
    values, vectors = torch.linalg.eigh(sigma)
    kept = values > _rank_tolerance(values, 0.0)
    rank = max(int(kept.sum(dim=-1).max().item()), 1)
    factor = vectors * torch.where(kept, values, 0.0).sqrt().unsqueeze(-2)
    return factor[..., -rank:]  # eigh sorts ascending: the kept columns come last


def _frechet(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor,
             factor_b: torch.Tensor | None) -> torch.Tensor:
    """:func:`frechet` of float64 tensors, ``factor_b`` being :func:`root_factor` of ``sigma_b`` or None: ``[...]``."""
    lower, info = torch.linalg.cholesky_ex(sigma_a)
    if info.any():  # a singular Σa: through the reference's factor
        factor_b = _root_factor(sigma_b) if factor_b is None else factor_b
        inner = factor_b.mT @ sigma_a @ factor_b
    else:
        inner = lower.mT @ sigma_b @ lower
    values = torch.linalg.eigvalsh(_sym(inner))
    cross = torch.where(values > _rank_tolerance(values, 0.0), values, 0.0).sqrt().sum(dim=-1)
    # traces summed in order, as torch.trace does (a reduction differs in the last bits)
    trace_a, trace_b = (sigma.diagonal(dim1=-2, dim2=-1).cumsum(dim=-1)[..., -1] for sigma in (sigma_a, sigma_b))
    return ((mu_a - mu_b).square().sum(dim=-1) + trace_a + trace_b - 2.0 * cross).clamp_min(0.0)


def root_factor(cov: Array) -> Array:
    r"""Factor ``R [..., D, r]`` of covariances ``[..., D, D]``, :math:`R R^\top = \Sigma` (for :func:`frechet`).

    The Cholesky factor (``r = D``) when every matrix is positive definite; otherwise

    .. math::
        R = U_r \Lambda_r^{1/2}, \qquad R R^\top = \Sigma, \qquad R\, U_r^\top = \Sigma^{1/2},

    :math:`\Sigma = U \Lambda U^\top` (symmetric eigendecomposition) restricted to the
    eigenvalues above ``D·machine-eps·λ_max``; the others, rounding noise of a singular
    covariance, count as 0. Over a batch, ``r`` is then the largest rank (at least 1) and
    a matrix of lower rank has zero columns. Inputs are assumed symmetric positive
    semi-definite (not checked; :func:`w2` checks).
    """
    as_numpy, device = _target(cov)
    return _out(_root_factor(_matrices("cov", cov, device)), as_numpy)


def frechet(mean_a: Array, cov_a: Array, mean_b: Array, cov_b: Array, root_b: Array | None = None) -> Array:
    r"""Squared 2-Wasserstein (Fréchet) distance between Gaussians, batched: ``float64 [...]``.

    .. math::
        W_2^2\big(\mathcal N(\mu_a, \Sigma_a), \mathcal N(\mu_b, \Sigma_b)\big)
        = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
        - 2 \operatorname{tr}\big(\Sigma_b^{1/2} \Sigma_a \Sigma_b^{1/2}\big)^{1/2}

    (Dowson & Landau 1982; Givens & Shortt 1984; Gelbrich 1990). The trace of the root
    is :math:`\sum_i \sqrt{\lambda_i}` over the non-zero eigenvalues of
    :math:`\Sigma_a \Sigma_b`, taken from a symmetric matrix: :math:`L^\top \Sigma_b L`
    with the Cholesky factor :math:`\Sigma_a = L L^\top` when every :math:`\Sigma_a` of the
    batch is positive definite (precise when :math:`\Sigma_a` is ill-conditioned), else
    the ``r × r`` matrix :math:`R^\top \Sigma_a R` with :math:`R R^\top = \Sigma_b`
    (:func:`root_factor`). Eigenvalues at or below ``k·machine-eps·λ_max`` (``k × k``
    matrix) count as 0: their square roots would turn rounding noise into a visible
    error when a covariance is singular. The result is clipped at 0. Exact (no ridge).

    Parameters
    ----------
    mean_a, mean_b : ``[..., D]``
    cov_a, cov_b : ``[..., D, D]``, symmetric positive semi-definite (not checked; :func:`w2` checks)
    root_b : ``[..., D, r]``, optional
        :func:`root_factor` of ``cov_b``, computed once for a reference compared with
        many sets (FID of 2048-dimensional features: at most one eigendecomposition of
        the reference for all signals). Computed here when needed and not given.

    Batch dimensions broadcast. Returns numpy when every array input is numpy, else
    torch (module conventions).
    """
    as_numpy, device = _target(mean_a, cov_a, mean_b, cov_b, root_b)
    sigma_a, sigma_b = _matrices("cov_a", cov_a, device), _matrices("cov_b", cov_b, device)
    dim = sigma_a.shape[-1]
    if sigma_b.shape[-1] != dim:
        raise ValueError(f"cov_a and cov_b must have the same dimension, got {dim} and {sigma_b.shape[-1]}")
    mu_a, mu_b = _vectors("mean_a", mean_a, dim, device), _vectors("mean_b", mean_b, dim, device)
    factor = None if root_b is None else _to_tensor("root_b", root_b, device)
    if factor is not None and (factor.ndim < 2 or factor.shape[-2] != dim):
        raise ValueError(f"root_b must be a factor [..., {dim}, r], got shape {tuple(factor.shape)}")
    return _out(_frechet(mu_a, sigma_a, mu_b, sigma_b, factor), as_numpy)


def w2(mean_s: Array, cov_s: Array, mean_t: Array, cov_t: Array) -> float:
    r"""Squared 2-Wasserstein distance between two Gaussians (Gelbrich / Fréchet).

    .. math::
        W_2^2 = \|\mu_s - \mu_t\|^2 + \operatorname{tr}\Big(\Sigma_s + \Sigma_t
        - 2 \big(\Sigma_t^{1/2} \Sigma_s \Sigma_t^{1/2}\big)^{1/2}\Big)

    :func:`frechet` of validated inputs (``[D]``, ``[D, D]``; symmetric and positive
    semi-definite up to rounding, else ``ValueError``): the trace of the root is
    :math:`\sum_i \sqrt{\lambda_i}` over the eigenvalues of :math:`L^\top \Sigma_t L`,
    :math:`\Sigma_s = L L^\top` (Cholesky, eigenvector-free ``eigvalsh``), or, when
    :math:`\Sigma_s` is singular, of :math:`R^\top \Sigma_s R`, :math:`R R^\top = \Sigma_t`
    (:func:`root_factor`: Cholesky, or eigendecomposition when :math:`\Sigma_t` is singular
    too). Exact (no ridge). Eigenvalues below rounding level
    (``k·machine-eps·λ_max`` for a ``k × k`` matrix) count as 0: their square roots would
    turn rounding noise into a visible error when a covariance is singular. The result
    is clipped at 0. Returns a Python float. POT's
    ``ot.gaussian.bures_wasserstein_distance`` returns the square root of this.
    """
    _, device = _target(mean_s, cov_s, mean_t, cov_t)
    sigma_s = _covariance("cov_s", cov_s, device)
    sigma_t = _covariance("cov_t", cov_t, device)
    _same_dim(sigma_s, sigma_t)
    dim = sigma_s.shape[0]
    mu_s = _mean("mean_s", mean_s, dim, device)
    mu_t = _mean("mean_t", mean_t, dim, device)
    return _frechet(mu_s, sigma_s, mu_t, sigma_t, None).item()


# --------------------------------------------------------------------------- maps


def _map_inputs(cov_s: Array, cov_t: Array, eps: float) -> tuple[bool, torch.Tensor, torch.Tensor, float]:
    """Validated inputs of a map: ``(as_numpy, Σs float64, Σt float64, eps)`` on one device."""
    as_numpy, device = _target(cov_s, cov_t)
    sigma_s = _covariance("cov_s", cov_s, device)
    sigma_t = _covariance("cov_t", cov_t, device)
    _same_dim(sigma_s, sigma_t)
    return as_numpy, sigma_s, sigma_t, _check_eps(eps)


def ot_map(cov_s: Array, cov_t: Array, eps: float = DEFAULT_EPS, ridge: str = "absolute") -> Array:
    r"""Matrix ``A [D, D]`` of the optimal map from :math:`\mathcal N(\cdot, \Sigma_s)` to :math:`\mathcal N(\cdot, \Sigma_t)`.

    .. math::
        A = \Sigma_s^{-1/2} \big(\Sigma_s^{1/2} \Sigma_t \Sigma_s^{1/2}\big)^{1/2} \Sigma_s^{-1/2}

    (Knott & Smith 1984), the unique symmetric PSD solution of
    :math:`A \Sigma_s A = \Sigma_t`; the map is :math:`T(v) = A (v - \mu_s) + \mu_t`.
    ``Σs`` must be positive definite (else ``ValueError``; use :func:`gaussian_map`,
    which switches to :func:`degenerate_ot_map`).

    Regularisation (the authors' convention): before its square root the inner matrix
    :math:`M` gets its most negative eigenvalue removed and the ridge ``eps`` added,
    :math:`M \to M + (\max(0, -\lambda_{\min}(M)) + \varepsilon) I`. ``eps = 0`` gives
    the exact map; the default 1e-7 is the published "sensitivity". ``ridge="relative"``
    scales it by the mean eigenvalue of :math:`M` (:func:`ridge_value`).

    Computation: with the Cholesky factor :math:`\Sigma_s = L L^\top`, the matrix
    :math:`M_L = L^\top \Sigma_t L` is orthogonally similar to
    :math:`\Sigma_s^{1/2} \Sigma_t \Sigma_s^{1/2}` (same spectrum, same regularisation)
    and :math:`A = L^{-\top} (M_L + cI)^{1/2} L^{-1}` equals the formula above. This
    needs one symmetric eigendecomposition instead of two plus an inverse.
    """
    as_numpy, sigma_s, sigma_t, eps = _map_inputs(cov_s, cov_t, eps)
    _check_ridge(ridge)
    factor, info = torch.linalg.cholesky_ex(sigma_s)
    if info.item() != 0:
        raise ValueError(
            "cov_s is not positive definite, so ot_map does not exist; use gaussian_map or "
            "degenerate_ot_map (Freirich et al. 2021, eq. 19) for a singular source covariance"
        )
    inner = _sym(factor.T @ sigma_t @ factor)
    values, vectors = torch.linalg.eigh(inner)
    values = values + (max(0.0, -values.min().item()) + ridge_value(eps, inner, ridge))
    # (M_L + cI)^{1/2} = G G^T with G = V diag(λ^{1/4}); A = (L^{-T} G)(L^{-T} G)^T.
    half = torch.linalg.solve_triangular(factor.T, vectors * values.sqrt().sqrt(), upper=True)
    return _out(_sym(half @ half.T), as_numpy)


def degenerate_ot_map(cov_s: Array, cov_t: Array, eps: float = DEFAULT_EPS,
                      ridge: str = "absolute") -> tuple[Array, Array]:
    r"""Optimal map from a possibly singular :math:`\Sigma_s`: ``(A [D, D], noise_cov [D, D])``.

    Freirich, Michaeli & Meir (2021), eq. (19). With :math:`T^*` the optimal map from
    the target to the source,

    .. math::
        T^* = \Sigma_t^{-1/2} \big(\Sigma_t^{1/2} \Sigma_s \Sigma_t^{1/2}\big)^{1/2} \Sigma_t^{-1/2},
        \qquad T^* \Sigma_t T^* = \Sigma_s,

    the optimal coupling is :math:`(T^* t, t)`, and the conditional law of :math:`t`
    given :math:`s = T^* t` gives the map and its independent noise

    .. math::
        A = \Sigma_t T^* \Sigma_s^{\dagger}
          = \Sigma_t^{1/2} \big(\Sigma_t^{1/2} \Sigma_s \Sigma_t^{1/2}\big)^{1/2}
            \Sigma_t^{-1/2} \Sigma_s^{\dagger},
        \qquad
        \Sigma_w = \Sigma_t^{1/2}\big(I - \Sigma_t^{1/2} T^* \Sigma_s^{\dagger} T^* \Sigma_t^{1/2}\big)\Sigma_t^{1/2}
                 = \Sigma_t - A \Sigma_s A^\top,

    so the push-forward covariance :math:`A \Sigma_s A^\top + \Sigma_w` is
    :math:`\Sigma_t`. Pseudo-inverses drop eigenvalues at or below
    ``max(eps, D·machine-eps·λ_max)``; :math:`\Sigma_t^{-1/2}` is a pseudo-inverse too,
    so a singular target (few samples) is accepted. The inner root has no ridge
    (nothing is inverted through it); its eigenvalues below ``D·machine-eps·λ_max`` are
    set to 0, since the square root would amplify their rounding noise. Rounding (or
    a singular target) can leave :math:`\Sigma_w` slightly indefinite, where the
    authors' code fails; here it is projected onto the PSD cone (negative eigenvalues
    set to 0). ``A`` is in general not symmetric. For an invertible :math:`\Sigma_s`
    this is :func:`ot_map` with :math:`\Sigma_w = 0`. ``ridge="relative"`` scales ``eps``
    by each matrix's mean eigenvalue (:func:`ridge_value`).
    """
    as_numpy, sigma_s, sigma_t, eps = _map_inputs(cov_s, cov_t, eps)

    values_t, vectors_t = torch.linalg.eigh(sigma_t)
    values_t = values_t.clamp_min(0.0)
    kept_t = values_t > _rank_tolerance(values_t, ridge_value(eps, sigma_t, ridge))
    root_t = _spectral(vectors_t, values_t.sqrt())
    inv_root_t = _spectral(vectors_t, torch.where(kept_t, values_t, 1.0).rsqrt() * kept_t)

    values_m, vectors_m = torch.linalg.eigh(_sym(root_t @ sigma_s @ root_t))
    values_m = torch.where(values_m > _rank_tolerance(values_m, 0.0), values_m, 0.0)
    root_m = _spectral(vectors_m, values_m.sqrt())
    cross = root_t @ root_m @ inv_root_t  # Σt T*

    values_s, vectors_s = torch.linalg.eigh(sigma_s)
    kept_s = values_s > _rank_tolerance(values_s, ridge_value(eps, sigma_s, ridge))
    basis = vectors_s[:, kept_s]
    pinv_s = (basis / values_s[kept_s]) @ basis.T
    whitened = cross @ (basis / values_s[kept_s].sqrt())  # A Σs A^T = whitened whitened^T
    noise = _sym(sigma_t - whitened @ whitened.T)
    values_w, vectors_w = torch.linalg.eigh(noise)
    noise = _spectral(vectors_w, values_w.clamp_min(0.0))
    return _out(cross @ pinv_s, as_numpy), _out(noise, as_numpy)


def gaussian_map(cov_s: Array, cov_t: Array, eps: float = DEFAULT_EPS,
                 ridge: str = "absolute") -> tuple[Array, Array | None]:
    r"""The map to use for these covariances: ``(A, None)`` or ``(A, noise_cov)``.

    :func:`ot_map` when :math:`\Sigma_s` is positive definite beyond the ridge,
    :math:`\lambda_{\min}(\Sigma_s) > \varepsilon` (tested by a Cholesky factorisation
    of :math:`\Sigma_s - \varepsilon I`), otherwise :func:`degenerate_ot_map` — the
    switch of the authors' code. With ``ridge="relative"`` the threshold and both maps'
    ridges are ``eps`` times the mean eigenvalue of the matrix concerned.
    """
    _, device = _target(cov_s, cov_t)
    eps = _check_eps(eps)
    sigma_s = _covariance("cov_s", cov_s, device)
    threshold = ridge_value(eps, sigma_s, ridge)
    shifted = sigma_s - threshold * torch.eye(sigma_s.shape[0], dtype=torch.float64, device=device)
    if torch.linalg.cholesky_ex(shifted)[1].item() == 0:
        return ot_map(cov_s, cov_t, eps, ridge), None
    return degenerate_ot_map(cov_s, cov_t, eps, ridge)


def interpolate_operator(A: Array, alpha: float) -> Array:
    r"""Operator interpolation :math:`A_\alpha = (1 - \alpha) A + \alpha I` (Adrai et al. 2023).

    ``alpha = 0`` is the transport, ``alpha = 1`` the identity; values outside [0, 1]
    extrapolate.
    """
    as_numpy, device = _target(A)
    matrix = _to_tensor("A", A, device)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A must be a square matrix [D, D], got shape {tuple(matrix.shape)}")
    alpha = float(alpha)
    if not np.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    eye = torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    return _out((1.0 - alpha) * matrix + alpha * eye, as_numpy)


# -------------------------------------------------------------------- statistics


class GaussianStats:
    r"""Streaming float64 mean and unbiased covariance of samples ``[N, D]``.

    Holds the count :math:`n`, the mean :math:`\bar x` and the centred scatter
    :math:`M_2 = \sum_i (x_i - \bar x)(x_i - \bar x)^\top`. A batch is centred on its
    own mean and combined by Chan, Golub & LeVeque's pairwise formula

    .. math::
        n = n_a + n_b,\quad \delta = \bar x_b - \bar x_a,\quad
        \bar x = \bar x_a + \tfrac{n_b}{n}\delta,\quad
        M_2 = M_{2,a} + M_{2,b} + \tfrac{n_a n_b}{n}\delta\delta^\top,

    which avoids the cancellation of raw second moments. ``merge`` uses the same
    formula, so merged statistics equal single-pass ones up to rounding.
    ``cov = M_2 / (n - 1)``.
    """

    def __init__(self, dim: int, device: str | torch.device | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._count = 0
        self._mean = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        self._m2 = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)

    def __repr__(self) -> str:
        return f"GaussianStats(dim={self.dim}, count={self._count}, device={self.device})"

    @property
    def count(self) -> int:
        """Number of samples seen."""
        return self._count

    @property
    def mean(self) -> torch.Tensor:
        """Mean ``[D]`` float64 (needs at least one sample)."""
        if self._count < 1:
            raise ValueError("GaussianStats has no samples yet; call update() first")
        return self._mean.clone()

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased covariance ``[D, D]`` float64, divided by ``n - 1`` (needs two samples)."""
        if self._count < 2:
            raise ValueError(f"the covariance needs at least two samples, got {self._count}")
        return _sym(self._m2 / (self._count - 1))

    def update(self, samples: Array) -> "GaussianStats":
        """Add samples ``[N, D]`` (any real dtype; accumulated in float64). Returns ``self``."""
        batch = _to_tensor("samples", samples, self.device, check_finite=False)
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"samples must have shape [N, {self.dim}], got {tuple(batch.shape)}")
        if batch.shape[0] == 0:
            return self
        batch_mean = batch.mean(dim=0)
        # a NaN or ±inf sample makes its column's mean non-finite (not read back where values were checked)
        if not values_are_checked() and not torch.isfinite(batch_mean).all():
            raise ValueError("samples contains NaN or infinite values")
        centred = batch - batch_mean
        self._combine(batch.shape[0], batch_mean, centred.T @ centred)
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """Add another accumulator's samples, in place. Returns ``self``."""
        if not isinstance(other, GaussianStats):
            raise TypeError(f"can only merge a GaussianStats, got {type(other).__name__}")
        if other.dim != self.dim:
            raise ValueError(f"cannot merge dimension {other.dim} into dimension {self.dim}")
        if other._count:
            self._combine(other._count, other._mean.to(self.device), other._m2.to(self.device))
        return self

    def _combine(self, count: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        total = self._count + count
        delta = mean - self._mean
        weight = self._count * count / total
        self._mean = self._mean + delta * (count / total)
        self._m2 = _sym(self._m2 + m2 + weight * torch.outer(delta, delta))
        self._count = total

    def all_reduce(self, group: Any = None) -> "GaussianStats":
        r"""Replace every process's statistics by those of all processes together.

        Two sums over ``torch.distributed`` (must be initialised; tensors travel on
        ``self.device``, so use CUDA tensors with NCCL): first the counts and
        :math:`n_k \bar x_k`, giving the global mean :math:`\bar x`, then
        :math:`M_{2,k} + n_k (\bar x_k - \bar x)(\bar x_k - \bar x)^\top`, whose sum is
        the global scatter. Every process must call it. Returns ``self``.
        """
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("torch.distributed is not initialised; call init_process_group first")
        first = torch.cat([torch.tensor([float(self._count)], dtype=torch.float64, device=self.device),
                           self._mean * self._count])
        dist.all_reduce(first, op=dist.ReduceOp.SUM, group=group)
        total = int(round(first[0].item()))
        if total == 0:
            return self
        mean = first[1:] / total
        delta = self._mean - mean
        scatter = self._m2 + self._count * torch.outer(delta, delta)
        dist.all_reduce(scatter, op=dist.ReduceOp.SUM, group=group)
        self._count, self._mean, self._m2 = total, mean, _sym(scatter)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"count": int64 scalar, "mean": [D], "m2": [D, D]}`` (copies, float64)."""
        return {
            "count": torch.tensor(self._count, dtype=torch.int64),
            "mean": self._mean.clone(),
            "m2": self._m2.clone(),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], device: str | torch.device | None = None
    ) -> "GaussianStats":
        """Rebuild an accumulator from :meth:`state_dict` (on ``device``, default: where the state lives)."""
        missing = {"count", "mean", "m2"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; expected keys count, mean, m2")
        mean = torch.as_tensor(state["mean"])
        m2 = torch.as_tensor(state["m2"])
        count = int(torch.as_tensor(state["count"]).item())
        if mean.ndim != 1 or m2.shape != (mean.shape[0], mean.shape[0]) or count < 0:
            raise ValueError(
                f"inconsistent state: mean {tuple(mean.shape)}, m2 {tuple(m2.shape)}, count {count}"
            )
        stats = cls(mean.shape[0], device=device if device is not None else mean.device)
        stats._count = count
        stats._mean = mean.to(stats.device, torch.float64).clone()
        stats._m2 = m2.to(stats.device, torch.float64).clone()
        return stats
