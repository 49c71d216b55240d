"""Progress of long steps in the run log while they run: done/total, rate and ETA, about every
10% and at least every ``every_s`` seconds of work (never one line per item)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Progress:
    """``update(done)`` logs ``<label>: done/total (p%), r <unit>/s, ETA …`` when a new tenth
    of the work is done or ``every_s`` passed since the last line, and at the end."""

    def __init__(
        self,
        log: Any,
        label: str,
        total: int,
        unit: str = "items",
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.label, self.total, self.unit = log, label, total, unit
        self.every_s, self.clock = every_s, clock
        self.started = self.last_at = clock()
        self.last_tenth = 0

    def update(self, done: int) -> None:
        now = self.clock()
        tenth = done * 10 // max(self.total, 1)
        if tenth == self.last_tenth and now - self.last_at < self.every_s and done < self.total:
            return
        if done >= self.total and self.last_tenth == 10:
            return  # the end was logged already
        self.last_tenth, self.last_at = tenth, now
        self.log.info(self.line(done, now - self.started))

    def line(self, done: int, elapsed: float) -> str:
        share = done / self.total if self.total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        tail = f", ETA {_duration(eta)}" if eta is not None and done < self.total else ""
        return (
            f"{self.label}: {done}/{self.total} {self.unit} ({share:.0%}), "
            f"{rate:.2f} {self.unit}/s{tail}"
        )


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def loop_progress(log: Any, label: str, total: int) -> Callable[[int, int, int], None]:
    """The agent loop's ``on_step(step, running, total)`` as progress lines (rows finished)."""
    progress = Progress(log, label, total, unit="rows")

    def on_step(step: int, running: int, rows: int) -> None:
        progress.update(rows - running)

    return on_step


def counted_progress(log: Any, label: str, unit: str = "items") -> Callable[[int, int], None]:
    """A ``(done, total)`` callback (the embedders' and the KB sync's) as progress lines; the
    total is taken from the first call."""
    progress: list[Progress] = []

    def report(done: int, total: int) -> None:
        if not progress or progress[0].total != total:
            progress[:] = [Progress(log, label, total, unit=unit)]
        progress[0].update(done)

    return report
