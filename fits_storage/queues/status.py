"""The states of a queue entry. Success deletes the entry, so there is no 'done' state."""

from enum import StrEnum


class Status(StrEnum):
    WAITING = "waiting"  # ready, or deferred/backing off until ``after``
    IN_PROGRESS = "in_progress"  # claimed: a lease held by one worker, kept alive by heartbeats
    FAILED = "failed"  # permanent failure: waits for a human or a re-add
