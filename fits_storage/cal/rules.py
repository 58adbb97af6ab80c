"""Calibration rules as data: for each instrument and calibration type, what a calibration of
that type is, which of the frame's fields it must match, the tolerances, extra filters, the
time window, how many to return and how to rank them.

A ``Rule`` is resolved for one frame (a mapping of ``header`` column names to values, so rules
are tested on plain dicts) into a ``Plan``: a flat list of ``Check``s that becomes one SQL
query (associate.py) and that explain and the re-queue evaluate in Python. An instrument's
``RuleSet`` also says which calibration types its frames need (what ``/calibrations`` lists and
the cache stores); ``/calmgr`` answers any type asked for, as FitsStorage's calmgr did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fits_storage.cal.checks import (
    EQUAL,
    NOT_EQUAL,
    NOT_TRUE,
    ONE_OF,
    Check,
    Within,
)

Frame = Mapping[str, Any]

# Every calibration type the API knows; another one is a client's mistake (400).
CALTYPES = (
    "bias",
    "processed_bias",
    "dark",
    "processed_dark",
    "flat",
    "processed_flat",
    "arc",
    "processed_arc",
    "standard",
    "processed_standard",
)

# The fields a rule may read from a frame or a candidate (the header columns selected).
FIELDS = (
    "id",
    "instrument",
    "observation_type",
    "observation_class",
    "object",
    "program_id",
    "data_label",
    "ut_datetime",
    "exposure_time",
    "coadds",
    "filter_name",
    "disperser",
    "focal_plane_mask",
    "central_wavelength",
    "detector_binning",
    "detector_roi_setting",
    "detector_readmode",
    "detector_gain_setting",
    "amp_read_area",
    "nod_and_shuffle",
    "nod_count",
    "nod_pixels",
    "overscan_trimmed",
    "overscan_subtracted",
    "elevation",
    "cass_rotator_pa",
    "spectroscopy",
    "mode",
    "types",
    "reduction",
    "qa_state",
    "engineering",
)

FrameChecks = Callable[[Frame], tuple[Check, ...]]


def always(_frame: Frame) -> bool:
    return True


def no_checks(_frame: Frame) -> tuple[Check, ...]:
    return ()


@dataclass(frozen=True)
class Order:
    """Closest in time first; with ``wavelength_scale`` a score adding the time difference
    over ``time_days`` and the central wavelength difference over the scale (micrometres, for
    the frame), as FitsStorage ranks GMOS standards."""

    time_days: float = 1.0
    wavelength_scale: Callable[[Frame], float] | None = None


BY_TIME = Order()


@dataclass(frozen=True)
class Rule:
    """One way to find one calibration type. ``kind`` holds the constant checks saying what
    such a calibration is (``reduction``, ``observation_type``...): the candidates explain
    considers. ``when`` chooses between variants of the same type (GMOS imaging and
    spectroscopy flats); ``extra`` gives frame-dependent checks the fixed fields cannot say."""

    caltype: str
    kind: tuple[Check, ...]
    match: tuple[str, ...] = ()
    within: Mapping[str, float] = field(default_factory=dict)
    extra: FrameChecks = no_checks
    window_days: float | None = None
    howmany: int = 1
    order: Order = BY_TIME
    when: Callable[[Frame], bool] = always
    same_instrument: bool = True


@dataclass(frozen=True)
class Plan:
    """A rule resolved for one frame: ``checks`` are all of them (``kind`` first)."""

    rule: Rule
    frame: Frame
    kind: tuple[Check, ...]
    checks: tuple[Check, ...]

    @property
    def caltype(self) -> str:
        return self.rule.caltype

    @property
    def howmany(self) -> int:
        return self.rule.howmany

    def failures(self, candidate: Frame) -> list[Check]:
        """The checks a candidate fails (none: it is acceptable)."""
        return [check for check in self.checks if not check.test(candidate)]


@dataclass(frozen=True)
class RuleSet:
    """An instrument's rules (variants of a type in order, the first whose ``when`` holds
    applies) and the types its frames need."""

    rules: tuple[Rule, ...]
    applicable: Callable[[Frame], list[str]]

    def rule_for(self, frame: Frame, caltype: str) -> Rule | None:
        for rule in self.rules:
            if rule.caltype == caltype and rule.when(frame):
                return rule
        return None

    def caltypes(self) -> set[str]:
        return {rule.caltype for rule in self.rules}


def common_checks(frame: Frame) -> tuple[Check, ...]:
    """What every calibration must be, whatever the type: not failed QA, and engineering data
    only for an engineering frame (FitsStorage's CalQuery)."""
    checks = [Check("qa_state", NOT_EQUAL, "Fail")]
    if frame.get("engineering") is not True:
        checks.append(Check("engineering", NOT_TRUE))
    if frame.get("id") is not None:
        checks.append(Check("id", NOT_EQUAL, frame["id"]))
    return tuple(checks)


def resolve(rule: Rule, frame: Frame) -> Plan:
    """The rule's checks for this frame."""
    checks: list[Check] = list(rule.kind)
    if rule.same_instrument:
        checks.append(Check("instrument", EQUAL, frame.get("instrument")))
    checks += [Check(name, EQUAL, frame.get(name)) for name in rule.match]
    checks += [Check(name, Within(tol), frame.get(name)) for name, tol in rule.within.items()]
    checks += rule.extra(frame)
    if rule.window_days is not None and frame.get("ut_datetime") is not None:
        window = Within(timedelta(days=rule.window_days))
        checks.append(Check("ut_datetime", window, frame["ut_datetime"]))
    checks += common_checks(frame)
    kind = tuple(rule.kind)
    if rule.same_instrument:
        kind += (Check("instrument", EQUAL, frame.get("instrument")),)
    return Plan(rule, frame, kind, tuple(checks))


def raw(observation_type: str) -> tuple[Check, ...]:
    return (Check("reduction", EQUAL, "RAW"), Check("observation_type", EQUAL, observation_type))


def processed(name: str, observation_types: tuple[str, ...] | None = None) -> tuple[Check, ...]:
    """A processed calibration (``reduction`` PROCESSED_<name>); the observation types it can
    have keep the query on the header index's second column."""
    types = observation_types or (name,)
    return (
        Check("reduction", EQUAL, f"PROCESSED_{name}"),
        Check("observation_type", ONE_OF, types),
    )
