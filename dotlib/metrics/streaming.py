r"""Metrics that stream over batches and reduce across processes, for evaluations of any size.

The shape is torchmetrics': an accumulator is built once, ``update`` is called batch by
batch, ``reduce`` sums the states of every ``torch.distributed`` process (each process
must call it; afterwards every process holds the totals), and ``compute`` returns the
values. ``state_dict``/``load_state_dict`` save and restore a state (a run's checkpoint,
:mod:`dotlib.runner`). Memory depends on the accumulator's settings, never on the number of images:

- :class:`PerImageMeans` — per-image metrics (PSNR, SSIM, MSE, LPIPS): float64 count, sum
  and sum of squares per metric, giving the mean over images and their standard deviation.
- :class:`SetCDF` — the sum of per-image projected-patch CDFs of
  :class:`~dotlib.metrics.SlicedWasserstein` (a set's CDF is the mean of its images').
- :class:`BandSums` — the per-band sums (count, Σv, Σvvᵀ) of
  :class:`~dotlib.metrics.detail.DetailFrechet`.
- :class:`FeatureGaussian` — FID's Gaussian of features as :class:`~dotlib.gaussian.GaussianStats`.
- :class:`FeatureSample` — KID's features: a uniform random subset of at most ``capacity``
  images, chosen by a hash of (seed, global image index) ("bottom-k" sampling), so the
  subset is the same whatever the batch order or the number of processes.
- :class:`SplitScores` — Inception Score by splits, image ``i`` going to split
  ``i mod splits``: per split the count, :math:`\sum_x \sum_k p \log p` and
  :math:`\sum_x p(y|x)`; then :math:`\mathrm{IS}_s = \exp(\overline{\sum_k p\log p} -
  \sum_k \bar p_k \log \bar p_k)`, exactly the chunked score of :func:`inception_score`.

Images carry GLOBAL indices (their position in the evaluated list) so that results do not
depend on how images are split between processes: counts agree exactly and values to
floating-point summation order. Why hand-written: torchmetrics' FID/KID/IS keep every
feature of every image (50 000 × 2048 floats per signal and α), and its accumulators are
tied to torch-fidelity's network; here the features come from clean-fid's pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

from ..distributed import is_distributed
from ..gaussian import GaussianStats, frechet, root_factor
from .detail import DetailFrechet
from .inception import kid
from .sliced_wasserstein import SlicedWasserstein

__all__ = ["BandSums", "FeatureGaussian", "FeatureSample", "PerImageMeans", "SetCDF", "SplitScores",
           "hash_priority"]


def _sum_all(tensor: torch.Tensor, group=None) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return tensor


def _indices(indices: torch.Tensor | np.ndarray | list[int], count: int) -> np.ndarray:
    array = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).reshape(-1)
    if array.shape[0] != count:
        raise ValueError(f"got {array.shape[0]} global indices for {count} images")
    if (array < 0).any():
        raise ValueError("global image indices must be >= 0")
    return array


class _Stateful:
    """``state_dict``/``load_state_dict`` over the attributes named in ``STATE`` (tensors or arrays)."""

    STATE: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        """Copies of the state's tensors and arrays, by attribute name."""
        return {name: _copy(getattr(self, name)) for name in self.STATE}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; ``ValueError`` when a name, dtype or shape differs."""
        if set(state) != set(self.STATE):
            raise ValueError(f"{type(self).__name__} state has {sorted(state)}, expected {sorted(self.STATE)}")
        for name in self.STATE:
            current, saved = getattr(self, name), state[name]
            if isinstance(current, torch.Tensor):
                if not isinstance(saved, torch.Tensor) or saved.dtype != current.dtype \
                        or saved.shape != current.shape:
                    raise ValueError(f"{type(self).__name__}.{name}: saved {_describe(saved)}, "
                                     f"expected {_describe(current)}")
                saved = saved.to(current.device)
            setattr(self, name, _copy(saved))


def _copy(value):
    return value.clone() if isinstance(value, torch.Tensor) else None if value is None else np.array(value)


def _describe(value) -> str:
    return f"{type(value).__name__} {getattr(value, 'dtype', '')} {tuple(getattr(value, 'shape', ()))}"


class PerImageMeans(_Stateful):
    """Mean and standard deviation over images of per-image metrics (float64 sums)."""

    STATE = ("state",)

    def __init__(self, names: tuple[str, ...], device: str | torch.device = "cpu"):
        self.names = tuple(names)
        self.device = torch.device(device)
        self.state = torch.zeros(len(self.names), 3, dtype=torch.float64, device=self.device)  # n, Σv, Σv²

    def update(self, values: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        """Add ``{name: per-image values [B]}`` (every name of this accumulator); each image counts
        ``weight`` (its pixels, for a pooled metric: see :meth:`weighted_means`)."""
        if set(values) != set(self.names):
            raise ValueError(f"expected values for {sorted(self.names)}, got {sorted(values)}")
        for row, name in enumerate(self.names):
            value = values[name].to(self.device, torch.float64).reshape(-1)
            self.state[row] += torch.stack([value.new_tensor(weight * value.numel()), value.sum(),
                                            value.square().sum()])

    def weighted_means(self) -> dict[str, float]:
        """``{name: Σ values / Σ weights}``: with values ``w_i·v_i`` and weights ``w_i`` (pixels), the
        pixel-pooled mean of ``v`` (e.g. the MSE of every pixel of the set); NaN where none was seen."""
        return {name: (total / count if count else math.nan)
                for name, (count, total, _) in zip(self.names, self.state.tolist())}

    def reduce(self, group=None) -> None:
        _sum_all(self.state, group)

    def compute(self) -> dict[str, float]:
        """``{name: mean, name_sd: std over images (n - 1)}``; NaN where no image was seen."""
        out = {}
        for row, name in enumerate(self.names):
            count, total, squares = self.state[row].tolist()
            mean = total / count if count else math.nan
            variance = (squares - count * mean * mean) / (count - 1) if count > 1 else math.nan
            out[name] = mean
            out[f"{name}_sd"] = math.sqrt(max(variance, 0.0)) if count > 1 else math.nan
        return out


class SetCDF(_Stateful):
    """Streaming SWD of a set: the sum of its images' CDFs under one :class:`SlicedWasserstein`."""

    STATE = ("count", "total")

    def __init__(self, swd: SlicedWasserstein):
        self.swd = swd
        self.count = torch.zeros(1, dtype=torch.float64, device=swd.device)
        self.total = torch.zeros_like(swd.reference_cdf, dtype=torch.float64)

    def update_from_pyramid(self, bands: list[torch.Tensor], indices) -> None:
        """Add the images of a :func:`laplacian_pyramid` batch; patch positions follow their global ``indices``."""
        cdfs = self.swd.pyramid_cdfs(bands, indices=_indices(indices, bands[0].shape[0]))
        self.total += cdfs.double().sum(dim=0)
        self.count += cdfs.shape[0]

    def reduce(self, group=None) -> None:
        _sum_all(self.count, group)
        _sum_all(self.total, group)

    def mean_cdf(self) -> torch.Tensor:
        if self.count.item() < 1:
            raise ValueError("SetCDF has seen no image")
        return (self.total / self.count).float()

    def compute(self, reference: "SetCDF") -> float:
        """SWD (mean over pyramid levels) of this set to ``reference``'s set."""
        return float(self.swd.distance(self.mean_cdf(), reference.mean_cdf()).mean())


class BandSums(_Stateful):
    """Streaming detail index of a set: the summed band statistics of one :class:`DetailFrechet`."""

    STATE = ("total",)

    def __init__(self, detail: DetailFrechet):
        self.detail = detail
        self.total = torch.zeros_like(detail.reference_stats, dtype=torch.float64)

    def update_from_pyramid(self, bands: list[torch.Tensor]) -> None:
        self.total += self.detail.pyramid_stats(bands).sum(dim=0)

    def reduce(self, group=None) -> None:
        _sum_all(self.total, group)

    def compute(self, reference: "BandSums") -> float:
        return float(self.detail.distance(self.total, reference.total).mean())


class FeatureGaussian:
    r"""FID's side of one set: the streamed Gaussian of its features.

    :meth:`compute` takes the Fréchet distance to a reference set by
    :func:`dotlib.gaussian.frechet`: through the Cholesky factor of the set's covariance or,
    for a singular one, through the reference's :meth:`root`, computed once and kept (an
    eigendecomposition of a 2048² matrix takes seconds on a CPU, and the study compares dozens
    of signals with one reference); equal to :func:`dotlib.gaussian.w2` (tested).
    """

    def __init__(self, dim: int, device: str | torch.device = "cpu"):
        self.stats = GaussianStats(dim, device)
        self._root: torch.Tensor | None = None

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        self.stats.update(torch.as_tensor(features, dtype=torch.float64))

    def state_dict(self) -> dict:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict) -> None:
        stats = GaussianStats.from_state_dict(state, device=self.stats.device)
        if stats.dim != self.stats.dim:
            raise ValueError(f"FeatureGaussian state of {stats.dim} dimensions, expected {self.stats.dim}")
        self.stats, self._root = stats, None

    def reduce(self, group=None) -> None:
        if is_distributed():
            self.stats.all_reduce(group)
        self._root = None

    def root(self) -> torch.Tensor:
        r""":func:`~dotlib.gaussian.root_factor` ``[D, r]`` of this set's covariance (computed once): its
        Cholesky factor, or :math:`U_r \Lambda_r^{1/2}` over its r eigenvalues above rounding level."""
        if self._root is None:
            self._root = root_factor(self.stats.cov)
        return self._root

    def compute(self, reference: "FeatureGaussian") -> float:
        r"""Fréchet distance (squared W2 of the Gaussians) to ``reference``.

        A singular :math:`\Sigma_a` (fewer images than dimensions) goes through the ``r × r``
        matrix :math:`R^\top \Sigma_a R`, :math:`R` = :meth:`root` of the reference (r <= images - 1
        on a small reference).
        """
        a, b = self.stats, reference.stats
        return float(frechet(a.mean, a.cov, b.mean, b.cov, root_b=reference.root()))


def hash_priority(indices: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random uint64 per (seed, index): SplitMix64 of ``index + seed·2⁶⁴/φ``."""
    with np.errstate(over="ignore"):
        z = indices.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class FeatureSample(_Stateful):
    """KID's side of one set: features of a uniform random subset of at most ``capacity`` images.

    Image ``i`` has priority ``hash_priority(i, seed)``; the ``capacity`` lowest priorities
    seen are kept. The same images are kept whatever the order of updates or the number of
    processes, and two sets measured on the same images keep the same indices. The features
    (float32) stay where they come from (the GPU in a GPU run); priorities and indices are
    small host arrays. An update only moves the rows that enter the sample: appended while
    it is not full, then written over the rows they push out (no copy of the whole sample).
    """

    STATE = ("features", "priority", "index")

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self.capacity, self.seed = int(capacity), int(seed)
        self.features: torch.Tensor | None = None
        self.priority = np.empty(0, dtype=np.uint64)
        self.index = np.empty(0, dtype=np.int64)

    def update(self, features: np.ndarray | torch.Tensor, indices) -> None:
        """Add features ``[B, F]`` (numpy, or a tensor on any device) of the images at global ``indices``."""
        features = torch.as_tensor(features).to(torch.float32)
        index = _indices(indices, features.shape[0])
        if self.features is None:
            self.features = features[:0]
        self._merge(features.to(self.features.device), hash_priority(index, self.seed), index)

    def _merge(self, features: torch.Tensor, priority: np.ndarray, index: np.ndarray) -> None:
        """Keep the ``capacity`` lowest (priority, index) of the kept rows and these."""
        kept = len(self.priority)
        order = np.lexsort((np.concatenate([self.index, index]), np.concatenate([self.priority, priority])))
        chosen = order[:self.capacity]
        entering = chosen[chosen >= kept] - kept
        leaving = np.setdiff1d(np.arange(kept), chosen[chosen < kept])   # never more than entering
        replaced, appended = entering[:len(leaving)], entering[len(leaving):]
        if len(leaving):
            slots = torch.as_tensor(leaving, device=self.features.device)
            self.features[slots] = features[torch.as_tensor(replaced, device=features.device)]
            self.priority[leaving], self.index[leaving] = priority[replaced], index[replaced]
        if len(appended):
            rows = torch.as_tensor(appended, device=features.device)
            self.features = torch.cat([self.features, features[rows]])
            self.priority = np.concatenate([self.priority, priority[appended]])
            self.index = np.concatenate([self.index, index[appended]])

    def reduce(self, group=None) -> None:
        if not is_distributed():
            return
        gathered: list = [None] * dist.get_world_size(group)
        own = None if self.features is None else self.features.cpu()
        dist.all_gather_object(gathered, (own, self.priority, self.index), group=group)
        parts = [part for part in gathered if part[0] is not None and len(part[1])]
        if not parts:
            return
        device = self.features.device if self.features is not None else torch.device("cpu")
        self.features, self.priority, self.index = parts[0][0][:0].to(device), self.priority[:0], self.index[:0]
        self._merge(torch.cat([part[0] for part in parts]).to(device), np.concatenate([p[1] for p in parts]),
                    np.concatenate([p[2] for p in parts]))

    def sorted_features(self) -> np.ndarray:
        """The kept features ``float64 [n, F]`` in order of global index (on the host)."""
        if self.features is None or not len(self.index):
            raise ValueError("FeatureSample has seen no image")
        order = torch.as_tensor(np.argsort(self.index), device=self.features.device)
        return self.features[order].cpu().numpy().astype(np.float64)

    def compute(self, reference: "FeatureSample", subsets: int = 100, subset_size: int = 1000) -> tuple[float, float]:
        """KID (mean, std over subsets) to ``reference`` by :func:`~dotlib.metrics.kid`."""
        return kid(self.sorted_features(), reference.sorted_features(), subsets, subset_size, self.seed)


class SplitScores(_Stateful):
    """Inception Score by splits (image ``i`` in split ``i mod splits``), streamed."""

    STATE = ("count", "neg_entropy", "total")

    def __init__(self, classes: int, splits: int = 10, device: str | torch.device = "cpu"):
        if splits < 1:
            raise ValueError(f"splits must be >= 1, got {splits}")
        self.splits = int(splits)
        self.device = torch.device(device)
        self.count = torch.zeros(self.splits, dtype=torch.float64, device=self.device)
        self.neg_entropy = torch.zeros(self.splits, dtype=torch.float64, device=self.device)
        self.total = torch.zeros(self.splits, classes, dtype=torch.float64, device=self.device)

    def update(self, probabilities: np.ndarray | torch.Tensor, indices) -> None:
        p = torch.as_tensor(probabilities, dtype=torch.float64).to(self.device)
        split = torch.as_tensor(_indices(indices, p.shape[0]) % self.splits, device=self.device)
        self.count.index_add_(0, split, torch.ones(p.shape[0], dtype=torch.float64, device=self.device))
        self.neg_entropy.index_add_(0, split, torch.special.xlogy(p, p).sum(dim=1))
        self.total.index_add_(0, split, p)

    def reduce(self, group=None) -> None:
        for tensor in (self.count, self.neg_entropy, self.total):
            _sum_all(tensor, group)

    def compute(self) -> tuple[float, float]:
        """(mean, std over splits) of exp(E_x KL(p(y|x) || p(y))); empty splits are an error."""
        if (self.count < 1).any():
            raise ValueError(f"some of the {self.splits} IS splits hold no image: evaluate at least "
                             f"{self.splits} images or use fewer splits")
        marginal = self.total / self.count[:, None]
        kl = self.neg_entropy / self.count - torch.special.xlogy(marginal, marginal).sum(dim=1)
        scores = kl.exp()
        return float(scores.mean()), float(scores.std(correction=0))
