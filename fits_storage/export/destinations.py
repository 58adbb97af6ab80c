"""Per-destination backoff, shared by every entry one exporter process handles.

Long-haul links fail for hours. Without shared state each entry for a dead destination would
wait out its own network timeout and use up its own attempts. Instead the first failure marks
the destination down for a backoff delay (exponential with jitter, capped); until then its
entries are handed back at once with that delay, without touching the network, and without
counting as attempts. The first entry after the delay is the probe: success clears the state,
failure doubles the delay. Other destinations are unaffected.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fits_storage.queues import Backoff


@dataclass
class DestinationState:
    failures: int = 0
    down_until: float = 0.0
    last_error: str = ""


@dataclass
class DestinationHealth:
    """What this process knows about each destination's availability."""

    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=5.0, cap_seconds=600.0))
    clock: Callable[[], float] = time.monotonic
    states: dict[str, DestinationState] = field(default_factory=dict)

    def wait_left(self, destination: str) -> float:
        """Seconds until the destination may be tried again; 0 when it may be tried now."""
        state = self.states.get(destination)
        if state is None:
            return 0.0
        return max(0.0, state.down_until - self.clock())

    def last_error(self, destination: str) -> str:
        state = self.states.get(destination)
        return state.last_error if state else ""

    def failures(self, destination: str) -> int:
        state = self.states.get(destination)
        return state.failures if state else 0

    def failed(self, destination: str, error: str, retry_after: float | None = None) -> float:
        """Record a failure; returns the delay before the destination is tried again."""
        state = self.states.setdefault(destination, DestinationState())
        state.failures += 1
        state.last_error = error
        delay = self.backoff.delay(state.failures)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.backoff.cap_seconds)
        state.down_until = self.clock() + delay
        return delay

    def succeeded(self, destination: str) -> int:
        """Record an answer; returns how many failures in a row it ends (0 if it was up)."""
        state = self.states.pop(destination, None)
        return state.failures if state else 0

    def requeue_delay(self, destination: str) -> float:
        """For an entry skipped while its destination is down: the rest of the wait, spread a
        little so a backlog does not all come due in the same instant."""
        return self.wait_left(destination) + random.uniform(0.0, 1.0)
