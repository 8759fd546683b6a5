"""Finding metric weights on disk without downloading; :class:`MetricUnavailable` says what is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

__all__ = ["MetricUnavailable", "display_path", "env_path", "optional_path", "resolve"]


def display_path(path: Path | str) -> str:
    """``path`` as a message shows it: relative inside the working folder, ``~`` for the home folder.

    Reasons end up in committed tables; they name no absolute path of the machine that made them.
    """
    path = Path(path)
    for root, label in ((Path.cwd(), ""), (Path.home(), "~")):
        try:
            relative = path.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        return str(Path(label) / relative) if label else str(relative)
    return str(path)


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; ``reason`` says what is missing and how to get it."""

    def __init__(self, metric: str, reason: str):
        super().__init__(f"{metric} unavailable: {reason}")
        self.metric = metric
        self.reason = reason


def resolve(metric: str, what: str, explicit: Path | None, env: str, env_value: Path | None,
             defaults: Sequence[Path], how: str) -> Path:
    """First existing file among ``explicit``, ``env_value`` (from ``$env``) and ``defaults``.

    Raises :class:`MetricUnavailable` naming ``what``, the places looked at and ``how`` to get it.
    """
    if explicit is not None:
        if explicit.is_file():
            return explicit
        raise MetricUnavailable(metric, f"{what} not found at the given path {display_path(explicit)}. {how}")
    looked = ([env_value] if env_value is not None else []) + list(defaults)
    for path in looked:
        if path.is_file():
            return path
    places = ", ".join(display_path(p) for p in looked) or "nowhere"
    env_state = "unset" if env_value is None else "set"
    raise MetricUnavailable(metric, f"{what} not found (looked at: {places}; ${env} is {env_state}). {how}")


def optional_path(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path).expanduser()


def env_path(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else None
