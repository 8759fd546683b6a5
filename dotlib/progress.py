"""Progress of long loops: a tqdm bar in a terminal, two plain lines in a notebook.

Every loop of dotlib that reports progress goes through :func:`progress`. What it shows
depends on where the code runs:

- **a terminal** (stderr is a TTY, no Jupyter kernel): the ordinary ``tqdm`` bar on stderr;
- **a Jupyter kernel** (JupyterLab, or papermill running ``make reproduce``): one line when
  the loop starts and one summary line when it ends, on stdout::

      sr4 / mse_net: transport: 6 it to do
      sr4 / mse_net: transport: 6/6 it in 01:07 (11.2 s/it)

- **anything else** (output piped or redirected to a log file): the same two lines, on stderr.

The environment variable ``DOTLIB_PROGRESS`` (``bar``, ``lines`` or ``off``) overrides the choice.

Why not ``tqdm.auto``? Without ipywidgets it warns in every kernel ("IProgress not
found") and falls back to the text bar, whose every refresh (``\\r`` plus the redrawn bar)
becomes one more stream fragment of the saved notebook: dozens per loop in the executed
notebooks under ``results/``. With ipywidgets (pinned in requirements.txt, so that
libraries which import ``tqdm.auto`` themselves, such as huggingface_hub under diffusers,
raise no warning either) it draws a widget, and what papermill saves of a widget is poor:
a ``display_data`` output whose plain-text fallback is the bar *as first drawn*
("0%| | 0/20"), a fresh random model id on every run, and about 9 kB of widget state
in the notebook's metadata; GitHub, ``nbconvert`` and a notebook opened without the
widget manager show only that frozen "0%". Two plain lines read the same in every viewer,
record how long each loop took (the part of a bar worth keeping in a report), and stay
two lines however long the loop runs; long training loops print their own monitor lines
between them. This module never imports ``tqdm.auto`` or ``tqdm.autonotebook``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Iterable, Iterator

from tqdm.std import tqdm as _tqdm

__all__ = ["LineProgress", "in_kernel", "mode", "progress"]

MODES = ("bar", "lines", "off")

#: tqdm's keywords that only shape the live bar; :class:`LineProgress` accepts and ignores them.
_BAR_ONLY = {"mininterval", "maxinterval", "miniters", "ascii", "ncols", "nrows", "dynamic_ncols",
             "smoothing", "bar_format", "position", "leave", "colour", "delay", "lock_args", "unit_scale",
             "unit_divisor", "write_bytes", "postfix"}


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic notebook, papermill), not in an IPython terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half imported: not a kernel we know
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def mode() -> str:
    """``bar``, ``lines`` or ``off``: ``$DOTLIB_PROGRESS`` if set, else what suits where the code runs."""
    chosen = os.environ.get("DOTLIB_PROGRESS", "").strip().lower()
    if chosen:
        if chosen not in MODES:
            raise ValueError(f"DOTLIB_PROGRESS={chosen!r}; use one of {', '.join(MODES)}")
        return chosen
    if in_kernel():
        return "lines"
    stream = sys.stderr
    return "bar" if stream is not None and hasattr(stream, "isatty") and stream.isatty() else "lines"


def _duration(seconds: float) -> str:
    return _tqdm.format_interval(seconds)


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _rate(count: float, seconds: float, unit: str) -> str:
    """Always seconds per unit (one convention, whether a loop is fast or slow)."""
    if count <= 0 or seconds <= 0:
        return ""
    return f" ({_number(seconds / count)} s/{unit})"


def _units(count: float, unit: str) -> str:
    """``unit`` in the plural where it reads better: "6 images", "2 batches", but tqdm's "6 it" stays."""
    if count == 1 or unit == "it" or unit.endswith("s"):
        return unit
    return unit + ("es" if unit.endswith(("ch", "sh", "x")) else "s")


class LineProgress:
    """A progress "bar" that writes one line at the start and one at the end, nothing between.

    It takes tqdm's arguments and offers the part of tqdm's interface that dotlib uses
    (iteration, ``update``, ``set_postfix``, ``set_description``, ``close``, use as a
    context manager), so that callers need not know which one they got.
    """

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None, total: float | None = None,
                 initial: float = 0, unit: str = "it", file: IO[str] | None = None, disable: bool = False,
                 **ignored: Any) -> None:
        unknown = set(ignored) - _BAR_ONLY
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable, self.desc, self.total, self.unit = iterable, desc or "", total, unit
        self.n = self.initial = initial
        self.disable, self.file = disable, file
        self.postfix = ""
        self.closed = disable
        self.start_t = time.perf_counter()
        if not disable:
            if initial and total is not None:
                todo = f"resuming at {initial:g}/{total:g} {_units(total, unit)}"
            elif total is not None:
                todo = f"{total:g} {_units(total, unit)} to do"
            else:
                todo = "started"
            self._write(f"{self._prefix()}{todo}")

    # ---------------------------------------------------------------- tqdm's interface

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress has no iterable; call update() instead")
        finished = False
        try:
            for item in self.iterable:
                yield item
                self.n += 1
            finished = True
        finally:
            self.close(finished=finished)

    def __len__(self) -> int:
        if self.total is not None:
            return int(self.total)
        return len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(finished=kind is None)

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        items = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key}={value}" for key, value in items.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw: only the start and the end are written."""

    def write(self, text: str) -> None:
        self._write(text)

    def close(self, finished: bool | None = None) -> None:
        """Write the summary line once: count, elapsed time, rate and the last postfix."""
        if self.closed:
            return
        self.closed = True
        elapsed = time.perf_counter() - self.start_t
        done = self.n - self.initial
        count = f"{self.n:g}/{self.total:g}" if self.total is not None else f"{self.n:g}"
        complete = finished if finished is not None else (self.total is None or self.n >= self.total)
        verb = "in" if complete else "stopped after"
        postfix = f"; {self.postfix}" if self.postfix else ""
        self._write(f"{self._prefix()}{count} {_units(self.total or self.n, self.unit)} {verb} {_duration(elapsed)}"
                    f"{_rate(done, elapsed, self.unit)}{postfix}")

    # ---------------------------------------------------------------- helpers

    def _prefix(self) -> str:
        return f"{self.desc}: " if self.desc else ""

    def _write(self, line: str) -> None:
        stream = self.file
        if stream is None:
            stream = sys.stdout if in_kernel() else sys.stderr
        print(line, file=stream, flush=True)


def progress(iterable: Iterable | None = None, desc: str | None = None, total: float | None = None,
             **kwargs: Any):
    """Wrap ``iterable`` (or count ``update`` calls) with the progress report that suits the output.

    A ``tqdm.std.tqdm`` bar in a terminal, a :class:`LineProgress` (a start line and a
    summary line) in a Jupyter kernel or when output is redirected, nothing with
    ``DOTLIB_PROGRESS=off``. Keywords are tqdm's (``unit``, ``initial``, ``mininterval``, …).
    """
    chosen = mode()
    if chosen == "bar":
        return _tqdm(iterable, desc=desc, total=total, **kwargs)
    if chosen == "off":
        kwargs["disable"] = True
    return LineProgress(iterable, desc=desc, total=total, **kwargs)
