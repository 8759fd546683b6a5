"""Atomic writes (a result file is either the old one or the complete new one, never half), checked reads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from .precision import csv_text_moved, floored

__all__ = ["atomic_path", "read_safetensors", "write_csv", "write_text"]

_UMASK = os.umask(0)
os.umask(_UMASK)

#: One float format for every CSV: 6 significant digits (enough for every claim in the README),
#: so that floating-point differences between CPUs do not change a byte of the results.
FLOAT_FORMAT = "%.6g"


class atomic_path:
    """Context manager giving a temporary path that replaces ``path`` on success.

    >>> with atomic_path("results/x.csv") as tmp:
    ...     frame.to_csv(tmp)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                        dir=self.path.parent)
        os.close(handle)
        os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; use what open() would
        self.temporary = Path(name)
        return self.temporary

    def discard(self) -> None:
        """Keep the old file: the temporary one is deleted and nothing replaces ``path``."""
        self.discarded = True

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None and not getattr(self, "discarded", False):
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (no index) atomically with the project's float format, values below their
    declared floor as 0 (:mod:`dotlib.precision`).

    An existing file whose values all agree with ``frame`` within their declared precision is
    kept byte for byte (a rerun on another CPU leaves committed results alone); otherwise it is
    rewritten and the values that moved are printed.
    """
    path = Path(path)
    text = floored(frame).to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    if path.is_file():
        try:
            moved = csv_text_moved(path, text)
        except (ValueError, pd.errors.ParserError):   # not a table this code wrote (EmptyDataError included)
            moved = ["the old file is not a readable table"]
        if not moved:
            return path
        print(f"{path}: rewritten; values moved beyond their declared precision: {'; '.join(moved)}")
    return write_text(text, path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def read_safetensors(path: str | Path) -> tuple[dict[str, str], dict]:
    """``(metadata, tensors)`` of a safetensors file (tensors on the CPU).

    A file that is not safetensors, truncated or otherwise unreadable raises ``ValueError``
    naming it (``FileNotFoundError`` if there is no file).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); it is damaged, "
                         f"truncated, or not a file dotlib wrote") from error
    return metadata, tensors
