"""Which rule set each instrument uses: adding an instrument's rules is one line here."""

from __future__ import annotations

from fits_storage.cal.default import DEFAULT
from fits_storage.cal.gmos import GMOS
from fits_storage.cal.igrins2 import IGRINS2
from fits_storage.cal.rules import Frame, Plan, RuleSet, resolve

RULESETS: dict[str, RuleSet] = {
    "GMOS-N": GMOS,
    "GMOS-S": GMOS,
    "IGRINS-2": IGRINS2,
}


def ruleset_for(instrument: str | None) -> RuleSet:
    return RULESETS.get((instrument or "").upper(), DEFAULT)


def plan_for(frame: Frame, caltype: str) -> Plan | None:
    """The frame's plan for ``caltype``, or None when its instrument has no such rule (or none
    for a frame like this one, e.g. arcs for imaging)."""
    rule = ruleset_for(frame.get("instrument")).rule_for(frame, caltype)
    return None if rule is None else resolve(rule, frame)


def applicable(frame: Frame) -> list[str]:
    """The calibration types the frame needs, in a stable order, each once."""
    types = ruleset_for(frame.get("instrument")).applicable(frame)
    return list(dict.fromkeys(types))
