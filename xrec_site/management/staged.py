"""A management command that runs in timed stages (the demo and the study reproduction)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand


class StagedCommand(BaseCommand):
    """``_stage`` prints what a block does and records its seconds in ``self.seconds``."""

    seconds: dict[str, float]

    @contextmanager
    def _stage(self, key: str, message: str) -> Iterator[None]:
        """Print ``message``, run the block, print and record its elapsed seconds under ``key``
        (added up when a key is timed twice)."""
        self.stdout.write(f"{message}…")
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.seconds[key] = round(self.seconds.get(key, 0.0) + elapsed, 2)
        self.stdout.write(f"  {key}: {elapsed:.1f} s")
