"""The README's table of commands is true: every installed command is in it, and every option it
lists is in that command's --help (so every daemon takes the same --oneshot and --empty)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DAEMON_OPTIONS = ("--name", "--lockfile", "--demon", "--debug", "--empty", "--oneshot")


def console_scripts() -> dict[str, str]:
    """Command name -> module, from setup.cfg's entry points."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(
        (name.strip(), target.split(":")[0].strip())
        for name, target in (line.split("=") for line in lines)
    )


def readme_rows() -> dict[str, list[str]]:
    """Command -> options the README's command table lists for it."""
    text = (ROOT / "README.md").read_text()
    rows = {}
    for line in text.split("## Commands", 1)[1].splitlines():
        match = re.match(r"\| `([a-z_]+)` \|[^|]*\|([^|]*)\|$", line)
        if match:
            options = re.findall(r"`(--[a-z_-]+)`", match[2])
            if "daemon options" in match[2]:
                options += DAEMON_OPTIONS
            rows[match[1]] = options
    return rows


def test_every_command_is_in_the_readme() -> None:
    assert sorted(readme_rows()) == sorted(console_scripts())


@pytest.mark.parametrize("command", sorted(console_scripts()))
def test_readme_options_are_in_the_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", console_scripts()[command], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    offered = set(re.findall(r"--[a-z_-]+", result.stdout))
    listed = readme_rows()[command]
    assert set(listed) <= offered, f"{command}: README lists {set(listed) - offered}"
