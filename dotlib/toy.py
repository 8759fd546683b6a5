r"""The toy Gaussian study: every estimator of the paper, in closed form and by Monte Carlo.

Setting (Freirich, Michaeli & Meir, NeurIPS 2021; Adrai et al., NeurIPS 2023):
:math:`x \sim \mathcal N(\mu_x, \Sigma_x)` is a ``side × side`` image patch
(``dim = side²`` pixels) with stationary correlations, observed as
:math:`y = H x + n`, :math:`n \sim \mathcal N(0, \sigma^2 I)`. The tasks are

``denoise``    :math:`H = I` (the MMSE law :math:`p_{x^*}` has full rank);
``subsample``  :math:`H` = 2×2 box blur then keeping one pixel in four (2×2 average
               pooling, ``dim / 4`` measurements), so :math:`\Sigma^*` has rank
               ``dim / 4`` and the D_max map is the degenerate one of Freirich et al.

The MMSE estimator is :math:`x^* = \mu_x + K (y - H\mu_x)`,
:math:`K = \Sigma_x H^\top (H \Sigma_x H^\top + \sigma^2 I)^{-1}`, with law
:math:`\mathcal N(\mu_x, \Sigma^*)`, :math:`\Sigma^* = K H \Sigma_x`, and error
:math:`D^* = \operatorname{tr}(\Sigma_x - \Sigma^*)`. Every estimator studied is

.. math::
    \hat x = c + F x^* + w, \qquad w \sim \mathcal N(0, W) \text{ independent of } (x, y),

so, using :math:`\operatorname{Cov}(x, x^*) = \Sigma^*`, its error and law are exact:

.. math::
    E\|x - \hat x\|^2 = \|c + F\mu_x - \mu_x\|^2 + \operatorname{tr}(\Sigma_x)
      + \operatorname{tr}(F \Sigma^* F^\top + W) - 2 \operatorname{tr}(F \Sigma^*),
    \qquad \hat x \sim \mathcal N(c + F \mu_x,\; F \Sigma^* F^\top + W).

Units used throughout (CSV files and figures): ``mse`` is the squared error summed
over the ``dim`` pixels and averaged over samples, :math:`E\|x - \hat x\|^2`, in the
units of :math:`D^*`; ``w2`` is the 2-Wasserstein distance :math:`W_2(p_{\hat x}, p_x)`
itself, NOT squared, so that the perception–distortion bound reads
:math:`D(P) = D^* + (W_2^* - P)^2` for :math:`P \le W_2^* = W_2(p_{x^*}, p_x)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .gaussian import GaussianStats, degenerate_ot_map, gaussian_map, ot_map, sqrtm_psd, w2
from .io import write_csv

__all__ = [
    "DEFAULT_ALPHAS",
    "TASKS",
    "GaussianToy",
    "LinearEstimator",
    "ToyResult",
    "degradation_operator",
    "fit_dmax",
    "oracle_dmax",
    "patch_covariance",
    "plot_fewshot",
    "plot_pd_plane",
    "run_toy",
    "save_results",
]

TASKS = ("denoise", "subsample")
DEFAULT_ALPHAS = tuple(round(-1.0 + 0.1 * k, 10) for k in range(31))
"""α from −1 to 2 in steps of 0.1 (the paper's sweep)."""

_F64 = torch.float64

# Independent random streams of one seed.
_STREAM_TEST_X, _STREAM_TEST_NOISE, _STREAM_POSTERIOR, _STREAM_DMAX = 0, 1, 2, 3
_STREAM_FEW_TARGET, _STREAM_FEW_SOURCE, _STREAM_FEW_NOISE = 4, 5, 6


def _generator(seed: int, stream: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def _side(dim: int) -> int:
    side = math.isqrt(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else 0
    if side < 2 or side * side != dim:
        raise ValueError(f"dimension must be the square of an integer >= 2 (a side x side patch), got {dim!r}")
    return side


def patch_covariance(side: int, correlation_length: float = 2.0, std: float = 0.2) -> torch.Tensor:
    r"""Stationary covariance ``[side², side²]`` of a square patch (row-major pixels).

    :math:`\Sigma_{ij} = s^2 \exp(-\|p_i - p_j\| / \ell)`, :math:`p_i` the pixel
    positions: the exponential (Ornstein–Uhlenbeck) correlation, a classic model of
    natural-image pixel correlations; positive definite for any ``ℓ > 0``.
    """
    if side < 1 or correlation_length <= 0 or std <= 0:
        raise ValueError("side must be >= 1, correlation_length and std > 0")
    rows, cols = torch.meshgrid(torch.arange(side, dtype=_F64), torch.arange(side, dtype=_F64), indexing="ij")
    positions = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)
    distances = torch.cdist(positions, positions)
    return std**2 * torch.exp(-distances / correlation_length)


def degradation_operator(task: str, side: int) -> torch.Tensor:
    """The linear operator ``H [m, side²]`` of a task (see the module docstring)."""
    if task == "denoise":
        return torch.eye(side * side, dtype=_F64)
    if task == "subsample":
        if side % 2:
            raise ValueError(f"task 'subsample' needs an even patch side, got {side}")
        half = side // 2
        operator = torch.zeros(half * half, side * side, dtype=_F64)
        for r in range(half):
            for c in range(half):
                for dr in (0, 1):
                    for dc in (0, 1):
                        operator[r * half + c, (2 * r + dr) * side + 2 * c + dc] = 0.25
        return operator
    raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


@dataclass(frozen=True)
class GaussianToy:
    """A Gaussian restoration problem: prior ``N(mean_x, cov_x)``, ``y = operator @ x + noise_std * n``."""

    task: str
    mean_x: torch.Tensor
    cov_x: torch.Tensor
    operator: torch.Tensor
    noise_std: float

    @classmethod
    def build(cls, dimension: int, task: str, noise_std: float, correlation_length: float = 2.0,
              std: float = 0.2, mean: float = 0.5) -> "GaussianToy":
        """The study's problem: a ``√dimension``-sided patch of grey level ``mean`` ± ``std``."""
        side = _side(dimension)
        if not noise_std > 0:
            raise ValueError(f"noise_std must be > 0, got {noise_std}")
        return cls(task, torch.full((dimension,), float(mean), dtype=_F64),
                   patch_covariance(side, correlation_length, std), degradation_operator(task, side),
                   float(noise_std))

    @property
    def dim(self) -> int:
        return self.mean_x.shape[0]

    @property
    def gain(self) -> torch.Tensor:
        """``K [dim, m]`` of the MMSE estimator ``x* = mean_x + K (y - H mean_x)``."""
        h, cov = self.operator, self.cov_x
        measured = h @ cov @ h.T + self.noise_std**2 * torch.eye(h.shape[0], dtype=_F64)
        return torch.linalg.solve(measured, h @ cov).T

    @property
    def cov_mmse(self) -> torch.Tensor:
        """``Σ* = K H Σx``, covariance of the MMSE estimate (rank ``m``)."""
        cov = self.gain @ self.operator @ self.cov_x
        return 0.5 * (cov + cov.T)

    @property
    def cov_posterior(self) -> torch.Tensor:
        """``Σx − Σ*``, covariance of ``x`` given ``y`` (the same for every ``y``)."""
        return self.cov_x - self.cov_mmse

    @property
    def d_star(self) -> float:
        """``D* = tr(Σx − Σ*)``, the MMSE."""
        return self.cov_posterior.trace().item()

    @property
    def w2_star(self) -> float:
        """``W2(p_x*, p_x)`` (not squared)."""
        return math.sqrt(w2(self.mean_x, self.cov_mmse, self.mean_x, self.cov_x))

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs: clean ``x [n, dim]`` and observations ``y [n, m]``."""
        factor = torch.linalg.cholesky(self.cov_x)
        x = self.mean_x + torch.randn(n, self.dim, generator=generator, dtype=_F64) @ factor.T
        noise = torch.randn(n, self.operator.shape[0], generator=generator, dtype=_F64)
        return x, x @ self.operator.T + self.noise_std * noise

    def mmse(self, y: torch.Tensor) -> torch.Tensor:
        """``x* = E[x | y]`` for observations ``[n, m]``."""
        return self.mean_x + (y - self.operator @ self.mean_x) @ self.gain.T

    def theory_alpha(self, alpha: float) -> tuple[float, float]:
        """``(D* + (1−α)² W2*², α W2*)``: Freirich et al.'s curve, valid for α in [0, 1]."""
        return self.d_star + (1.0 - alpha) ** 2 * self.w2_star**2, alpha * self.w2_star


@dataclass(frozen=True)
class LinearEstimator:
    """``x̂ = offset + x* @ gain.T + w``, ``w ~ N(0, noise_cov)`` independent (``None``: no noise)."""

    offset: torch.Tensor
    gain: torch.Tensor
    noise_cov: torch.Tensor | None = None

    @classmethod
    def transport(cls, mean_s: torch.Tensor, mean_t: torch.Tensor, matrix: torch.Tensor,
                  noise_cov: torch.Tensor | None) -> "LinearEstimator":
        """The map ``T(v) = A (v − μs) + μt (+ w)``."""
        return cls(mean_t - matrix @ mean_s, matrix, noise_cov)

    def mix(self, alpha: float) -> "LinearEstimator":
        """Eq. (2) of Adrai et al.: ``(1 − α) x̂ + α x*`` (same noise draw, scaled)."""
        eye = torch.eye(self.gain.shape[0], dtype=_F64)
        noise = None if self.noise_cov is None else (1.0 - alpha) ** 2 * self.noise_cov
        return LinearEstimator((1.0 - alpha) * self.offset, (1.0 - alpha) * self.gain + alpha * eye, noise)

    def apply(self, x_star: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Estimates ``[n, dim]`` from ``x* [n, dim]``; ``z [n, dim]`` standard normal draws for ``w``."""
        out = self.offset + x_star @ self.gain.T
        if self.noise_cov is not None:
            out = out + z @ sqrtm_psd(self.noise_cov)
        return out

    def law(self, toy: GaussianToy) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[dim]`` and covariance ``[dim, dim]`` of ``x̂``."""
        cov = self.gain @ toy.cov_mmse @ self.gain.T
        if self.noise_cov is not None:
            cov = cov + self.noise_cov
        return self.offset + self.gain @ toy.mean_x, 0.5 * (cov + cov.T)

    def theory(self, toy: GaussianToy) -> tuple[float, float]:
        """Closed-form ``(E||x − x̂||², W2(p_x̂, p_x))`` (module docstring)."""
        mean, cov = self.law(toy)
        mse = ((mean - toy.mean_x).square().sum() + toy.cov_x.trace() + cov.trace()
               - 2.0 * (self.gain @ toy.cov_mmse).trace())
        return mse.item(), math.sqrt(w2(mean, cov, toy.mean_x, toy.cov_x))


@dataclass(frozen=True)
class ToyResult:
    """Tables of one run (see :func:`run_toy`) and the two reference numbers."""

    estimators: pd.DataFrame
    pd_curve: pd.DataFrame
    fewshot: pd.DataFrame
    task: str
    dimension: int
    d_star: float
    w2_star: float


def _measure(x: torch.Tensor, estimate: torch.Tensor, reference: GaussianStats) -> dict[str, float]:
    """Empirical MSE (with its standard error) and the W2 of the sample moments."""
    errors = (x - estimate).square().sum(dim=1)
    stats = GaussianStats(x.shape[1]).update(estimate)
    empirical_w2 = math.sqrt(w2(stats.mean, stats.cov, reference.mean, reference.cov))
    return {"mse": errors.mean().item(), "mse_se": (errors.std() / math.sqrt(len(errors))).item(),
            "w2": empirical_w2}


def _row(x: torch.Tensor, estimate: torch.Tensor, reference: GaussianStats,
         estimator: LinearEstimator, toy: GaussianToy) -> dict[str, float]:
    mse_theory, w2_theory = estimator.theory(toy)
    return {**_measure(x, estimate, reference), "mse_theory": mse_theory, "w2_theory": w2_theory}


def oracle_dmax(toy: GaussianToy, eps: float = 1e-7) -> LinearEstimator:
    """D_max with the true covariances: the exact map (no ridge) when ``Σ*`` has full rank,
    Freirich et al.'s degenerate map (pseudo-inverse threshold ``eps``) otherwise."""
    if toy.operator.shape[0] < toy.dim:
        matrix, noise = degenerate_ot_map(toy.cov_mmse, toy.cov_x, eps)
    else:
        matrix, noise = ot_map(toy.cov_mmse, toy.cov_x, eps=0.0), None
    return LinearEstimator.transport(toy.mean_x, toy.mean_x, matrix, noise)


def fit_dmax(x_samples: torch.Tensor, x_star_samples: torch.Tensor, eps: float = 1e-7) -> LinearEstimator:
    """D_max fitted from UNPAIRED samples of ``x`` and ``x*`` (``[N, dim]`` each), as DOT does."""
    source = GaussianStats(x_star_samples.shape[1]).update(x_star_samples)
    target = GaussianStats(x_samples.shape[1]).update(x_samples)
    matrix, noise = gaussian_map(source.cov, target.cov, eps)
    return LinearEstimator.transport(source.mean, target.mean, matrix, noise)


def run_toy(dimension: int = 64, task: str = "denoise", noise_std: float = 0.2, n_test: int = 20000,
            fewshot_sizes: Sequence[int] = (4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384),
            alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0, eps: float = 1e-7) -> ToyResult:
    """Run the study on CPU, deterministically for a given ``seed``.

    ``n_test`` test pairs ``(x, y)``; every estimator is applied to their ``x*`` and
    measured against their ``x`` (``mse``, ``mse_se``) and, through sample moments,
    against the test ``x`` law (``w2``); ``mse_theory`` and ``w2_theory`` are the
    closed forms of :class:`LinearEstimator`. The D_max few-shot fit of size ``N`` uses
    the first ``N`` of one stream of clean samples and the first ``N`` of an
    independent stream of MMSE estimates (unpaired), with ridge ``eps``.
    Returns tables ``estimators`` (rows mmse, posterior, dmax_oracle, dmax_fewshot at the
    largest N), ``pd_curve`` (one row per α, eq. (2) from the oracle) and ``fewshot``,
    their numbers rounded to 10 significant digits.
    """
    toy = GaussianToy.build(dimension, task, noise_std)
    sizes = sorted({int(n) for n in fewshot_sizes})
    if not sizes or sizes[0] < 2:
        raise ValueError(f"fewshot_sizes must be integers >= 2 (a covariance needs two samples), got {fewshot_sizes}")
    if n_test < 2:
        raise ValueError(f"n_test must be >= 2, got {n_test}")
    dim = toy.dim

    x = toy.sample(n_test, _generator(seed, _STREAM_TEST_X))[0]
    y = x @ toy.operator.T + toy.noise_std * torch.randn(
        n_test, toy.operator.shape[0], generator=_generator(seed, _STREAM_TEST_NOISE), dtype=_F64)
    x_star = toy.mmse(y)
    reference = GaussianStats(dim).update(x)
    eye = torch.eye(dim, dtype=_F64)

    mmse = LinearEstimator(torch.zeros(dim, dtype=_F64), eye)
    posterior = LinearEstimator(torch.zeros(dim, dtype=_F64), eye, toy.cov_posterior)
    dmax = oracle_dmax(toy, eps)
    z_dmax = torch.randn(n_test, dim, generator=_generator(seed, _STREAM_DMAX), dtype=_F64)
    z_posterior = torch.randn(n_test, dim, generator=_generator(seed, _STREAM_POSTERIOR), dtype=_F64)
    x_hat0 = dmax.apply(x_star, z_dmax)

    few_x = toy.sample(sizes[-1], _generator(seed, _STREAM_FEW_TARGET))[0]
    few_x_star = toy.mmse(toy.sample(sizes[-1], _generator(seed, _STREAM_FEW_SOURCE))[1])
    z_few = torch.randn(n_test, dim, generator=_generator(seed, _STREAM_FEW_NOISE), dtype=_F64)
    fewshot_rows, fitted = [], None
    for n in sizes:
        fitted = fit_dmax(few_x[:n], few_x_star[:n], eps)
        fewshot_rows.append({"n_samples": n, **_row(x, fitted.apply(x_star, z_few), reference, fitted, toy)})

    rows = [
        {"estimator": "mmse", **_row(x, x_star, reference, mmse, toy)},
        {"estimator": "posterior", **_row(x, posterior.apply(x_star, z_posterior), reference, posterior, toy)},
        {"estimator": "dmax_oracle", **_row(x, x_hat0, reference, dmax, toy)},
        {"estimator": "dmax_fewshot", **{k: v for k, v in fewshot_rows[-1].items() if k != "n_samples"}},
    ]
    curve_rows = []
    for alpha in alphas:
        mixed = dmax.mix(float(alpha))
        estimate = (1.0 - alpha) * x_hat0 + alpha * x_star
        curve_rows.append({"alpha": float(alpha), **_row(x, estimate, reference, mixed, toy)})

    return ToyResult(_rounded(pd.DataFrame(rows)), _rounded(pd.DataFrame(curve_rows)),
                     _rounded(pd.DataFrame(fewshot_rows)), task, dim, _significant(toy.d_star),
                     _significant(toy.w2_star))


def _significant(value: float) -> float:
    """``value`` to the 10 significant digits written in the CSV files."""
    return float(f"{value:.10g}")


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats to 10 significant digits: the tables, the CSV files and the figures then hold the
    same numbers, and last-bit differences of BLAS (thread counts) do not reach the outputs."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [_significant(v) for v in out[column]]
    return out


def save_results(result: ToyResult, results_dir: str | Path) -> list[Path]:
    """Write ``estimators.csv``, ``pd_curve.csv`` and ``fewshot.csv`` (byte-identical on reruns)."""
    folder = Path(results_dir)
    return [write_csv(result.estimators, folder / "estimators.csv"),
            write_csv(result.pd_curve, folder / "pd_curve.csv"),
            write_csv(result.fewshot, folder / "fewshot.csv")]


# ------------------------------------------------------------------------- figures

_STYLE = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "dotlib", "font.size": 9}
_LABELS = {"mmse": "MMSE $x^*$", "posterior": "posterior sample", "dmax_oracle": r"$D_{\max}$ (oracle)",
           "dmax_fewshot": r"$D_{\max}$ (few-shot)"}


def plot_pd_plane(result: ToyResult) -> matplotlib.figure.Figure:
    """Perception–distortion plane: bound, estimators, α sweep (measured values)."""
    palette = sns.color_palette("colorblind")
    curve, table = result.pd_curve, result.estimators.set_index("estimator")
    with plt.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=(7.6, 4.0))
        perception = np.linspace(0.0, result.w2_star, 200)
        axes.plot(perception, result.d_star + (result.w2_star - perception) ** 2, color="black", lw=1.2,
                  label=r"bound $D(P) = D^* + (W_2^* - P)^2$")
        axes.axhline(result.d_star, color="grey", lw=0.8, ls=":", label=rf"$D^* = {result.d_star:.3g}$")
        inside = curve[(curve["alpha"] >= -1e-9) & (curve["alpha"] <= 1 + 1e-9)]
        below, above = curve[curve["alpha"] < -1e-9], curve[curve["alpha"] > 1 + 1e-9]
        axes.plot(inside["w2"], inside["mse"], "o-", color=palette[0], ms=3, lw=1,
                  label=r"eq. (2) $\hat x_\alpha$, $\alpha\in[0,1]$")
        labelled = False
        for part in (below, above):
            if len(part):
                axes.plot(part["w2"], part["mse"], "o--", color=palette[0], ms=3, lw=0.8, mfc="white",
                          label=None if labelled else r"$\alpha\notin[0,1]$ (extrapolation)")
                labelled = True
        for alpha in (-1.0, 0.5, 2.0):
            point = curve.loc[(curve["alpha"] - alpha).abs().idxmin()]
            if abs(point["alpha"] - alpha) < 1e-9:
                axes.annotate(rf"$\alpha={alpha:g}$", (point["w2"], point["mse"]), xytext=(3, 5),
                              textcoords="offset points", fontsize=7, color=palette[0])
        for i, name in enumerate(["mmse", "posterior", "dmax_oracle", "dmax_fewshot"]):
            point = table.loc[name]
            axes.plot(point["w2"], point["mse"], "s" if name != "dmax_fewshot" else "D",
                      color=palette[i + 1], ms=7, ls="none",
                      label=f"{_LABELS[name]} ({point['w2']:.3g}, {point['mse']:.4g})")
        axes.set_xlabel(r"perception: $W_2(p_{\hat x}, p_x)$ (not squared)")
        axes.set_ylabel(r"distortion: MSE $E\|x - \hat x\|^2$ (sum over pixels)")
        axes.set_title(f"Gaussian toy, task '{result.task}', d = {result.dimension}")
        axes.set_xlim(left=0.0)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                    title="points: measured, (W2, MSE)", title_fontsize=7, alignment="left")
        figure.tight_layout()
    return figure


def plot_fewshot(result: ToyResult) -> matplotlib.figure.Figure:
    """MSE and W2 of few-shot D_max against the number N of unpaired samples (log axis)."""
    palette = sns.color_palette("colorblind")
    table = result.fewshot
    oracle = result.estimators.set_index("estimator").loc["dmax_oracle"]
    with plt.rc_context(_STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.2))
        for axes, column, label in ((left, "mse", r"MSE $E\|x-\hat x\|^2$"),
                                    (right, "w2", r"$W_2(p_{\hat x}, p_x)$ (not squared)")):
            axes.plot(table["n_samples"], table[column], "o-", color=palette[0], ms=4, label="measured")
            axes.plot(table["n_samples"], table[f"{column}_theory"], "x--", color=palette[1], ms=5,
                      label="closed form of the fitted map")
            axes.axhline(oracle[column], color=palette[2], lw=1, ls=":", label="oracle $D_{\\max}$ (measured)")
            axes.axvline(result.dimension, color="grey", lw=0.6, ls="-.", label="N = d")
            axes.set_xscale("log")
            axes.set_xlabel("N unpaired samples of $x$ and of $x^*$")
            axes.set_ylabel(label)
        left.set_yscale("log")
        right.set_yscale("log")
        left.legend(fontsize=7)
        figure.suptitle(f"Few-shot $D_{{\\max}}$, task '{result.task}', d = {result.dimension}", fontsize=9)
        figure.tight_layout()
    return figure
