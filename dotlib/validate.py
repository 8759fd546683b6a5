"""Validators of the inputs that cross dotlib's public boundaries: one per kind of input.

Each raises ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong values) with one
sentence saying what was expected and what was given, so that a bad input never turns
into a silently wrong result further down.
"""

from __future__ import annotations

import contextvars
import math
import numbers
from contextlib import contextmanager
from typing import Iterator, Mapping

import torch

__all__ = ["ALPHA_RANGE", "MAX_PATCH_DIM", "available_devices", "check_alpha", "check_device", "check_images",
           "check_patch_dim", "check_values", "check_values_at_once", "of_type", "values_are_checked",
           "values_checked"]

#: Set inside :func:`values_checked`: the values were checked once, so :func:`check_values` trusts them.
_VALUES_CHECKED = contextvars.ContextVar("dotlib_values_checked", default=False)

#: The α of eq. (2) dotlib accepts: the paper sweeps [-1, 2]; beyond ±10 an extrapolation only
#: magnifies the difference x* − x̂0 into clipped black and white.
ALPHA_RANGE = (-10.0, 10.0)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Multi-index of the ``flat``-th element of a tensor of ``shape`` (row-major)."""
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def check_values(tensor: torch.Tensor, name: str, low: float = 0.0, high: float = 1.0) -> None:
    """Raise ``ValueError`` unless the float ``tensor`` is non-empty, finite and within ``[low, high]``.

    Messages count the offending values and give the index of the first; the extremes are
    printed at full precision (``repr``), so ``1.0000001`` never reads as ``1``. Inside
    :func:`values_checked` it returns at once (the caller checked every tensor already).
    """
    if not _VALUES_CHECKED.get():
        _raise_unless_valid(tensor, name, low, high)


def _raise_unless_valid(tensor: torch.Tensor, name: str, low: float, high: float) -> None:
    """:func:`check_values`' test and messages, whatever the context."""
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = ~finite
        first = int(bad.flatten().nonzero()[0])
        nan = int(torch.isnan(tensor).sum())
        positive = int((tensor == float("inf")).sum())
        negative = int((tensor == float("-inf")).sum())
        raise ValueError(
            f"{name} must be finite, but {int(bad.sum())} of {tensor.numel()} values are not "
            f"({nan} NaN, {positive} +inf, {negative} -inf); the first is at index "
            f"{_index(first, tuple(tensor.shape))}"
        )
    lowest, highest = float(tensor.min()), float(tensor.max())
    if lowest < low or highest > high:
        outside = (tensor < low) | (tensor > high)
        first = int(outside.flatten().nonzero()[0])
        hint = "; images in [0, 255] must be divided by 255" if high == 1.0 and highest > 25.0 else ""
        raise ValueError(
            f"{name} must lie in [{low:g}, {high:g}], got values in [{lowest!r}, {highest!r}] "
            f"({int(outside.sum())} of {tensor.numel()} outside; the first at index "
            f"{_index(first, tuple(tensor.shape))}){hint}"
        )


def check_values_at_once(named: Mapping[str, torch.Tensor], low: float = 0.0, high: float = 1.0) -> None:
    """:func:`check_values` of every tensor of ``named`` (name -> float tensor) with one host read per
    device instead of three per tensor: on a GPU, one wait per batch however many signals it holds.
    A tensor that fails gets :func:`check_values`' full message, inside :func:`values_checked` too."""
    by_device: dict[torch.device, list[str]] = {}
    for name, tensor in named.items():
        if tensor.numel() == 0:
            _raise_unless_valid(tensor, name, low, high)
        by_device.setdefault(tensor.device, []).append(name)
    for names in by_device.values():
        summary = torch.stack([torch.stack([torch.isfinite(named[name]).all().double(), named[name].amin().double(),
                                            named[name].amax().double()]) for name in names]).tolist()
        for name, (finite, lowest, highest) in zip(names, summary):
            if not finite or lowest < low or highest > high:
                _raise_unless_valid(named[name], name, low, high)


def values_are_checked() -> bool:
    """Whether the caller is inside :func:`values_checked` (a finiteness check may be skipped)."""
    return _VALUES_CHECKED.get()


@contextmanager
def values_checked() -> Iterator[None]:
    """Inside, :func:`check_values` returns at once: for code that has just checked every tensor it
    passes on with :func:`check_values_at_once` (shapes and dtypes are still checked)."""
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)


def check_images(images: torch.Tensor, name: str = "images", channels: int | None = 3,
                 bounded: bool = True) -> None:
    """Raise unless ``images`` is a non-empty, finite float batch ``[B, C, H, W]`` in [0, 1].

    ``channels`` is the required ``C`` (3, RGB, by default; None accepts any). ``bounded=False``
    accepts any finite values (a restorer's unclipped output, as the authors encode it).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, 3, H, W], got {type(images).__name__}")
    layout = "[B, C, H, W]" if channels is None else f"[B, {channels}, H, W]"
    if images.ndim != 4 or (channels is not None and images.shape[1] != channels):
        raise ValueError(f"{name} must have shape {layout}, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got {images.dtype} "
                        f"(convert uint8 images with images.float() / 255)")
    if bounded:
        check_values(images, name)
    else:
        check_values(images, name, -math.inf, math.inf)


def check_alpha(alpha: object) -> float:
    """``alpha`` as a float if it is a finite number within :data:`ALPHA_RANGE`, else ``ValueError``."""
    low, high = ALPHA_RANGE
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) \
            or not low <= alpha <= high:
        raise ValueError(f"α must be a finite number in [{low:g}, {high:g}] (0: x̂0, 1: x*; the paper sweeps -1 to 2), "
                         f"got {alpha!r}")
    return float(alpha)


def of_type(value: object, kind: str) -> bool:
    """Whether ``value`` is of the declared type ``kind``, written as Python annotates it: ``int``,
    ``float`` (ints are floats too), ``bool``, ``str``, ``list[float]`` or ``Sequence[str]`` (a list
    or tuple whose items are), ``None``, unions with ``|``, ``Optional[...]``, ``any``. A bool is
    never a number and no string is a number: what a study file or a run configuration gives is
    taken as typed."""
    if kind.startswith("Optional[") and kind.endswith("]"):
        return value is None or of_type(value, kind[len("Optional["):-1])
    for option in (part.strip() for part in kind.split("|")):
        if option in ("any", "object") or (option == "None" and value is None):
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if not isinstance(value, bool) and ((option == "int" and isinstance(value, int))
                                            or (option == "float" and isinstance(value, (int, float)))):
            return True
        if option == "str" and isinstance(value, str):
            return True
        for container in ("list[", "Sequence["):
            if option.startswith(container) and isinstance(value, (list, tuple)):
                return all(of_type(item, option[len(container):-1]) for item in value)
        if option == "list" and isinstance(value, (list, tuple)):
            return True
    return False


def available_devices() -> list[str]:
    """The devices this machine offers: ``cpu``, then ``cuda:i`` and ``mps`` where present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, if this machine has it; else one ``ValueError`` sentence.

    Accepts ``cpu``, ``cuda``, ``cuda:i`` and ``mps`` (strings or ``torch.device``);
    ``cpu:0`` becomes ``cpu``.
    """
    available = ", ".join(available_devices())
    if isinstance(device, torch.device):
        parsed = device
    elif isinstance(device, str):
        try:
            parsed = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ValueError(f"device {device!r} is not a device name; this machine has: {available}") from None
    else:
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if parsed.type == "cpu":
        if parsed.index not in (None, 0):
            raise ValueError(f"device {device!r} does not exist: there is one CPU device, 'cpu'; "
                             f"this machine has: {available}")
        return torch.device("cpu")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r} was asked for but CUDA is not available here "
                             f"(no GPU or a CPU-only torch); this machine has: {available}")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r} does not exist: {count} CUDA device(s); "
                             f"this machine has: {available}")
        return parsed
    if parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} was asked for but Apple MPS is not available here; "
                             f"this machine has: {available}")
        return parsed
    raise ValueError(f"device {device!r} is not supported (use cpu, cuda, cuda:i or mps); "
                     f"this machine has: {available}")


#: Largest patch dimension ``C·p²`` LatentOT accepts: its covariances are ``D²`` float64
#: (4096² is 128 MiB each) and their eigendecompositions cost ``D³``.
MAX_PATCH_DIM = 4096


def check_patch_dim(channels: int, patch_size: int, encoder: str = "the encoder") -> int:
    """``C·p²``, or a ``ValueError`` saying the dimension if it exceeds :data:`MAX_PATCH_DIM`."""
    dim = int(channels) * int(patch_size) ** 2
    if dim > MAX_PATCH_DIM:
        largest = int((MAX_PATCH_DIM // int(channels)) ** 0.5)
        largest -= 1 - largest % 2  # odd
        raise ValueError(
            f"patch_size {patch_size} with the {channels} latent channels of {encoder} gives patches of "
            f"{channels}·{patch_size}² = {dim} dimensions, whose covariances would take "
            f"{dim * dim * 8 / 2**30:.3g} GiB each; at most {MAX_PATCH_DIM} dimensions are supported, "
            f"i.e. patch_size <= {largest} (the paper uses 5)"
        )
    return dim
