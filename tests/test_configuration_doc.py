"""docs/configuration.md's table of keys is the configuration the code reads: every key of
config.KEYS has a row, no row names a key the code does not know, and each row's type and
(non-empty) default are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from fits_storage.config import KEYS

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
HEADER = "| key | type | default | meaning |"
# How the table writes each type of config.KEYS.
TYPE_WORDS = {
    "dir": "path",
    "str": "text",
    "database_url": "text",
    "bool": "bool",
    "list": "list",
    "seconds": "seconds",
    "positive_seconds": "seconds > 0",
    "posint": "whole number",
    "mode": "octal",
    "bytes": "size",
}


def documented_rows(text: str) -> dict[str, tuple[str, str]]:
    """Key -> (type, default) of each row of the keys table; a row may name several keys."""
    lines = text.splitlines()
    start = lines.index(HEADER) + 2  # past the header and its |---| line
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for key in re.split(r",\s*", cells[0]):
            rows[key.strip("` ")] = (cells[1], cells[2].strip("` "))
    return rows


def test_every_key_has_a_row_and_every_row_a_key() -> None:
    rows = documented_rows(DOC.read_text())
    missing = sorted(set(KEYS) - set(rows))
    unknown = sorted(set(rows) - set(KEYS))
    assert not missing, f"docs/configuration.md lacks a row for: {', '.join(missing)}"
    assert not unknown, f"docs/configuration.md documents unknown keys: {', '.join(unknown)}"


def test_types_and_defaults_are_the_codes() -> None:
    rows = documented_rows(DOC.read_text())
    wrong = []
    for key, (kind, default) in KEYS.items():
        if key not in rows:
            continue  # the test above names it
        doc_type, doc_default = rows[key]
        if doc_type != TYPE_WORDS[kind]:
            wrong.append(f"{key}: type {doc_type!r}, the code's is {TYPE_WORDS[kind]!r}")
        if default and doc_default != default:
            wrong.append(f"{key}: default {doc_default!r}, the code's is {default!r}")
    assert not wrong, "docs/configuration.md disagrees with config.KEYS:\n" + "\n".join(wrong)


def test_a_missing_row_is_named(tmp_path: Path) -> None:
    text = DOC.read_text()
    without = "\n".join(line for line in text.splitlines() if not line.startswith("| defer_delay"))
    assert "defer_delay" not in documented_rows(without)
    assert "queue_poll_seconds" in documented_rows(without)
