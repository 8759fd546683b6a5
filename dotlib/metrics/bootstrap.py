"""Bootstrap resampling over images."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["bootstrap"]


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
