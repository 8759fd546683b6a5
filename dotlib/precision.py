"""The declared precision of every result value, and whether a rerun moved any value beyond it.

A result written on one CPU and rewritten on another differs in the last bits of its
float32 network outputs, and 6 printed digits do not hide that (a value on a rounding edge,
or a difference of two close numbers). So each result column declares a precision
(:data:`COLUMN_PRECISION`): a relative tolerance, and an absolute floor for values that
should be zero. Two values agree when ``|a − b| ≤ max(rel · max(|a|, |b|), floor)``; values
whose magnitude is below the floor are written as 0. Images agree within one 8-bit level.

:func:`dotlib.io.write_csv`, :func:`dotlib.plots.save_figure` and :meth:`LatentOT.save` keep
a committed file's bytes when the new content agrees with it at this precision, and say
which values moved when it does not; ``make verify`` compares with the same rules.
"""

from __future__ import annotations

import fnmatch
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["COLUMN_PRECISION", "Precision", "floored", "images_agree", "moved_values", "precision_of",
           "tensors_agree", "values_agree"]


@dataclass(frozen=True)
class Precision:
    """``rel``: relative tolerance; ``floor``: absolute tolerance, and the magnitude below which a value is 0."""

    rel: float
    floor: float


#: Per result column, the first matching name pattern wins. Differences of two measured values
#: and spreads carry the noise of the values they come from, hence a looser relative tolerance;
#: Monte-Carlo W2s of the toy sit at a sampling floor near 1e-7 that is noise, not signal. SWD
#: (random projections, CDFs on a grid) is the noisiest: rerun with oneDNN limited to AVX2
#: instead of AVX-512, its values and differences moved by up to 1.7e-6, so its floor is 1e-5.
COLUMN_PRECISION: tuple[tuple[str, Precision], ...] = (
    ("*swd*", Precision(1e-3, 1e-5)),
    ("d_*", Precision(1e-3, 1e-6)),
    ("*_sd", Precision(1e-3, 1e-9)),
    ("*_se", Precision(1e-3, 1e-9)),
    ("*w2*", Precision(1e-4, 1e-6)),
    ("*", Precision(1e-4, 1e-9)),
)

#: Tensors of a saved operator (float64 statistics from float32 encodes).
TENSOR_PRECISION = Precision(1e-4, 1e-9)

#: The most two PNG renderings of one figure may differ by, per pixel and channel (8-bit levels).
IMAGE_LEVELS = 1


def precision_of(column: str) -> Precision:
    """The declared precision of a result column (see :data:`COLUMN_PRECISION`)."""
    return next(precision for pattern, precision in COLUMN_PRECISION if fnmatch.fnmatchcase(column, pattern))


def floored(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every float value below its column's floor in magnitude set to 0."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            values = out[column].to_numpy(copy=True)
            values[np.abs(values) < precision_of(str(column)).floor] = 0.0
            out[column] = values
    return out


def _close(a: np.ndarray, b: np.ndarray, precision: Precision) -> np.ndarray:
    """Element-wise agreement of two float arrays (NaN with NaN, equal infinities)."""
    with np.errstate(invalid="ignore"):
        scale = np.maximum(np.abs(a), np.abs(b))
        near = np.abs(a - b) <= np.maximum(precision.rel * scale, precision.floor)
    return near | (np.isnan(a) & np.isnan(b)) | (a == b)


def values_agree(column: str, old: float, new: float) -> bool:
    """Whether two values of ``column`` agree within its declared precision."""
    return bool(_close(np.array([old], dtype=float), np.array([new], dtype=float), precision_of(column))[0])


def moved_values(old: pd.DataFrame, new: pd.DataFrame, limit: int = 3) -> list[str]:
    """What differs between two result tables beyond the declared precision, at most ``limit``
    descriptions ("column, row: old -> new"), or one line when the columns or shape differ."""
    if list(old.columns) != list(new.columns) or old.shape != new.shape:
        return [f"columns or shape changed: {old.shape} -> {new.shape}"]
    moved = []
    for column in old.columns:
        a, b = old[column], new[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            differs = ~_close(a.to_numpy(float), b.to_numpy(float), precision_of(str(column)))
        else:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())   # missing labels agree
            differs = ~same.to_numpy(dtype=bool)
        old_list, new_list = a.tolist(), b.tolist()
        moved += [f"{column}, row {row}: {old_list[row]!r} -> {new_list[row]!r}" for row in np.flatnonzero(differs)]
    return moved[:limit] + ([f"... {len(moved) - limit} more"] if len(moved) > limit else [])


def csv_text_moved(old_path: Path, new_text: str) -> list[str]:
    """:func:`moved_values` of a CSV file against the text that would replace it."""
    return moved_values(pd.read_csv(old_path), pd.read_csv(io.StringIO(new_text)))


def images_agree(old_path: Path, new_path: Path) -> bool:
    """Whether two PNG files hold images of one size within :data:`IMAGE_LEVELS` per pixel."""
    from PIL import Image

    with Image.open(old_path) as first, Image.open(new_path) as second:
        a, b = np.asarray(first.convert("RGBA"), dtype=np.int16), np.asarray(second.convert("RGBA"), dtype=np.int16)
    return a.shape == b.shape and int(np.abs(a - b).max(initial=0)) <= IMAGE_LEVELS


def tensors_agree(old: dict, new: dict, precision: Precision = TENSOR_PRECISION) -> bool:
    """Whether two ``{name: tensor}`` dicts hold the same names, shapes and dtypes, and values
    within ``precision`` relative to each tensor's largest magnitude."""
    if old.keys() != new.keys():
        return False
    for name, tensor in new.items():
        other = old[name]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            return False
        a, b = other.double().numpy().ravel(), tensor.double().numpy().ravel()
        scale = float(np.abs(np.concatenate([a, b])).max(initial=0.0))   # a matrix's noise scales with its norm
        if not (np.abs(a - b) <= max(precision.rel * scale, precision.floor)).all():
            return False
    return True
