"""What ``check_queues`` alerts on: the conditions admins must hear about before users do."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.queues.overview import all_queues
from fits_storage.queues.registry import worker_states

DHS_COPIER = "dhs"  # the registry's queue name for copy_from_dhs


def _age(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def queue_problems(session: Session, config: Config) -> list[str]:
    """One line per problem: a queue's oldest waiting entry too old, too many failures, and
    (on the summit) a DHS copier that has not run for too long."""
    problems = []
    for queue in all_queues(session):
        age = queue.oldest_waiting_seconds
        if age is not None and age > config.queue_alert_age_seconds:
            problems.append(
                f"{queue.name} queue: the oldest waiting entry is {_age(age)} old "
                f"({queue.depth} waiting; queue_alert_age_seconds = "
                f"{config.queue_alert_age_seconds:g})"
            )
        if queue.failed > config.queue_alert_failures:
            problems.append(
                f"{queue.name} queue: {queue.failed} failed entries "
                f"(queue_alert_failures = {config.queue_alert_failures})"
            )
    if not config.is_archive:
        copiers = [w for w in worker_states(session) if w.queue == DHS_COPIER]
        if not copiers:
            problems.append("copy_from_dhs has never run against this database")
        else:
            quiet = min(w.seconds_since_heartbeat for w in copiers)
            if quiet > config.dhs_alert_seconds:
                problems.append(
                    f"copy_from_dhs has not run for {_age(quiet)} "
                    f"(dhs_alert_seconds = {config.dhs_alert_seconds:g})"
                )
    return problems
