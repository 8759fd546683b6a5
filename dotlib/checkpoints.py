"""Resume for long streamed runs: each process's evaluator state, saved atomically every K batches.

A paper-scale task (50 000 images, dozens of signals) runs for hours; a lost machine should
cost minutes, not the run. :class:`RunCheckpoint` keeps, per process (rank ``r`` of ``W``),
``rank<r>-of-<W>.pt`` in the checkpoint folder: the run's settings, the number of batches
done, the :class:`~dotlib.metrics.StreamingEvaluator` state and the images kept for the
collage. A restarted run with the same settings loads it and skips those batches. Every
random choice of a run depends on the global image index, never on what ran before, so
the resumed run's metrics are identical to an uninterrupted one's (tested).

``rank<r>.log`` gets one line per batch (time, batches done, images, s/batch, time left):
``tail -f <folder>/rank0.log`` follows a run whose notebook output is not in view. When the
run completes, the state files are removed and the logs kept.

Why not torch's ``distributed.checkpoint``: the state here is a few small accumulators per
signal plus a bounded feature sample (numpy), one file per process is all a resume needs, and
the file must also work without a process group.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .io import atomic_path

__all__ = ["Resumed", "RunCheckpoint"]


@dataclass
class Resumed:
    """Where a process stands: batches done and the images kept so far (rank 0's collage)."""

    batches: int = 0
    kept: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    kept_names: list[str] = field(default_factory=list)


def _settings_text(settings: dict) -> dict:
    """``settings`` as JSON values (what a checkpoint records and compares)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


class RunCheckpoint:
    """One process's checkpoint and progress log in ``folder`` (None: neither is written).

    ``settings`` are the run's arguments: a checkpoint written with other settings (or
    another number of processes, which deals out other batches) is refused, naming them.
    """

    def __init__(self, folder: str | Path | None, settings: dict, rank: int, world: int, every: int = 25):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer (batches), got {every!r}")
        self.folder = None if folder is None else Path(folder)
        self.settings = _settings_text({**settings, "processes": world})
        self.rank, self.world, self.every = rank, world, every
        self.started, self._first = time.perf_counter(), 0

    @property
    def path(self) -> Path:
        return self.folder / f"rank{self.rank}-of-{self.world}.pt"

    def resume(self, evaluator) -> Resumed:
        """Load this process's state into ``evaluator`` if a checkpoint exists; what is already done."""
        if self.folder is None or not self.path.exists():
            return Resumed()
        # Our own file, written by save() below; it holds numpy arrays (the KID sample), hence pickle.
        saved = torch.load(self.path, map_location=evaluator.device, weights_only=False)
        if saved["settings"] != self.settings:
            changed = sorted(key for key in set(saved["settings"]) | set(self.settings)
                             if saved["settings"].get(key) != self.settings.get(key))
            raise ValueError(f"{self.path} was written by a run with other settings ({', '.join(changed)}); "
                             f"run with the same settings to resume, or delete {self.folder} to start again")
        evaluator.load_state_dict(saved["evaluator"])
        self.log(f"resumed after {saved['batches']} batches")
        return Resumed(saved["batches"], saved["kept"], saved["kept_names"])

    def step(self, done: Resumed, total: int, images: int, evaluator) -> None:
        """After a batch: one log line, and the state saved every ``every`` batches and at the last."""
        if self.folder is None:
            return
        elapsed = time.perf_counter() - self.started
        pace = elapsed / max(done.batches - self._first, 1)
        left = datetime.timedelta(seconds=round(pace * (total - done.batches)))
        self.log(f"batch {done.batches}/{total} ({images} images) {pace:.3g} s/batch, {left} left")
        if done.batches % self.every == 0 or done.batches == total:
            with atomic_path(self.path) as temporary:
                torch.save({"settings": self.settings, "batches": done.batches, "evaluator": evaluator.state_dict(),
                            "kept": done.kept, "kept_names": done.kept_names}, temporary)

    def begin(self, done: Resumed) -> None:
        """Start the clock for the time-left estimate at ``done.batches``."""
        self._first, self.started = done.batches, time.perf_counter()

    def finish(self) -> None:
        """The run completed: remove the state file (the log stays)."""
        if self.folder is not None:
            self.path.unlink(missing_ok=True)
            self.log("finished")

    def log(self, line: str) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.folder / f"rank{self.rank}.log", "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {line}\n")
