"""The shipped systemd units and crontabs: ``systemd-analyze verify`` passes on every unit, each
daemon of ``fits_storage.service.daemons`` has its hardened template unit and its place in the
role's target, and every command a unit or crontab names is a console script of setup.cfg whose
module accepts the options given."""

from __future__ import annotations

import argparse
import configparser
import importlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fits_storage.service.daemons import (
    ARCHIVE,
    DAEMONS,
    SUMMIT,
    WEB_COMMAND,
    WEB_TEMPLATE,
    daemons_for,
    installed,
    target_units,
)
from tests.conftest import IN_CI, make_test_config

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "systemd"
CRON = ROOT / "cron"
INSTALL_BIN = "/opt/fits_storage/venv/bin/"
# Commands a unit or crontab may name ahead of the change that adds them: none today, so
# every command named must be installed.
PLANNED: set[str] = set()
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "UMask": "0002",
}


def console_scripts() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key -> values`` of a unit file, every section together (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_commands() -> list[tuple[str, str, list[str]]]:
    """(unit file, command, arguments) of every ExecStart, with %i as an instance name."""
    found = []
    for unit in sorted(SYSTEMD.glob("*.service")):
        instance = "8000" if unit.name == WEB_TEMPLATE else "test1"  # the web's is its port
        for line in unit_settings(unit)["ExecStart"]:
            words = shlex.split(line.replace("%i", instance))
            assert words[0].startswith(INSTALL_BIN), f"{unit.name}: {words[0]}"
            found.append((unit.name, words[0].removeprefix(INSTALL_BIN), words[1:]))
    return found


def cron_commands() -> list[tuple[str, str, list[str]]]:
    """(crontab, command, arguments) of every job line."""
    found = []
    for crontab in sorted(CRON.glob("*.crontab")):
        for line in crontab.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if not words or "=" in words[0]:
                continue  # blank, comment, or an environment line (PATH=...)
            schedule = 1 if words[0].startswith("@") else 5
            found.append((crontab.name, words[schedule], words[schedule + 1 :]))
    return found


class Parsed(Exception):
    """Raised once a command's argument parser accepted the arguments: stop there."""


def accepts(command_target: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Call the console script's function with ``args`` up to its argument parsing; an
    argparse error (unknown option, bad value) fails the test."""
    module_name, _, function = command_target.partition(":")
    main = getattr(importlib.import_module(module_name), function)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        original(self, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        with pytest.raises(Parsed):
            main(args)
    except SystemExit as exc:  # argparse's error exit
        pytest.fail(f"{command_target} refuses {args}: exit {exc.code}")
    finally:
        monkeypatch.undo()


def test_units_and_crontabs_are_found() -> None:
    named = {command for _, command, _ in unit_commands() + cron_commands()}
    assert {"service_ingest_queue", "copy_from_dhs", WEB_COMMAND} <= named
    assert {"add_to_ingest_queue", "delete_files", "diskspace_check", "database_backup"} <= named
    assert {p.name for p in CRON.glob("*.crontab")} == {"summit.crontab", "archive.crontab"}


@pytest.mark.parametrize(
    ("source", "command", "args"),
    unit_commands() + cron_commands(),
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_every_command_named_exists_and_accepts_its_options(
    source: str, command: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = console_scripts()
    if command not in scripts:
        assert command in PLANNED, f"{source} names {command}, which setup.cfg does not install"
        pytest.skip(f"{command} is planned (added by another change), not yet in setup.cfg")
    accepts(scripts[command], args, monkeypatch)


def test_crontabs_carry_the_requeue_and_curation_jobs() -> None:
    jobs: dict[str, set[str]] = {}
    for crontab, command, args in cron_commands():
        jobs.setdefault(crontab, set()).add(" ".join([command, *args]))
    requeue = {
        "add_to_ingest_queue --file-re=fourday --demon",
        "add_to_ingest_queue --file-re=twentyday --demon",
        "add_to_ingest_queue --path=masks --demon",
        "add_to_ingest_queue --path=obslogs --demon",
        "add_to_ingest_queue --path=iraf_cals --demon",
    }
    for crontab in ("summit.crontab", "archive.crontab"):
        assert requeue <= jobs[crontab]
        assert "diskspace_check --demon" in jobs[crontab]
        assert any(job.startswith("database_backup") for job in jobs[crontab])
    assert "delete_files --demon" in jobs["summit.crontab"]
    assert not any(job.startswith("delete_files") for job in jobs["archive.crontab"])


def test_every_daemon_has_a_hardened_template_unit() -> None:
    shipped = {p.name for p in SYSTEMD.glob("*.service")}
    assert shipped == {daemon.unit for daemon in DAEMONS if daemon.unit_shipped} | {WEB_TEMPLATE}
    scripts = console_scripts()
    for daemon in DAEMONS:
        if not daemon.unit_shipped:
            assert not installed(daemon), f"{daemon.command} exists now: ship {daemon.unit}"
            assert daemon.command not in scripts
            continue
        settings = unit_settings(SYSTEMD / daemon.unit)
        (exec_start,) = settings["ExecStart"]
        words = shlex.split(exec_start)
        assert words[0] == INSTALL_BIN + daemon.command and "--name=%i" in words, daemon.unit
        assert settings["PartOf"] == [
            " ".join(f"fits-{r}.target" for r in sorted(daemon.roles, reverse=True))
        ]
        if daemon.command in scripts:
            assert scripts[daemon.command] == f"{daemon.module}:main"
            assert installed(daemon)
        else:
            assert daemon.command in PLANNED
    for unit in shipped:
        settings = unit_settings(SYSTEMD / unit)
        for key, value in HARDENING.items():
            assert settings.get(key) == [value], f"{unit}: {key}"
        assert settings.get("ReadWritePaths"), f"{unit}: no ReadWritePaths"


@pytest.mark.parametrize("role", [SUMMIT, ARCHIVE])
def test_targets_want_every_instance_of_their_role(role: str) -> None:
    settings = unit_settings(SYSTEMD / f"fits-{role}.target")
    wanted = [unit for line in settings["Wants"] for unit in line.split()]
    assert sorted(wanted) == sorted(target_units(role))
    for unit in wanted:
        template = unit.split("@")[0] + "@.service" if "@" in unit else unit
        assert (SYSTEMD / template).is_file(), f"fits-{role}.target wants {unit}: no unit file"


def test_daemons_for_follows_the_role_and_the_flags(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    summit = make_test_config(tmp_path / "s", db, export_destinations="http://archive")
    assert [d.command for d in daemons_for(summit)] == [
        "copy_from_dhs",
        "service_ingest_queue",
        "service_export_queue",
    ]
    archive = make_test_config(tmp_path / "a", db, is_archive="true", using_previews="true")
    assert [d.command for d in daemons_for(archive)] == [
        "service_ingest_queue",
        "ingest_uploaded_file",
        "service_preview_queue",
    ]
    plain_archive = make_test_config(tmp_path / "p", db, is_archive="true")
    assert "service_preview_queue" not in [d.command for d in daemons_for(plain_archive)]
    previewing_summit = make_test_config(tmp_path / "v", db, using_previews="true")
    assert "service_preview_queue" in [d.command for d in daemons_for(previewing_summit)]
    updating = make_test_config(tmp_path / "u", db, api_auth_cookie="secret")
    assert [d.command for d in daemons_for(updating)][-1] == "service_fileops_queue"
    assert "service_fileops_queue" not in [d.command for d in daemons_for(summit)]


def test_systemd_analyze_verify_passes_on_every_unit(tmp_path: Path) -> None:
    """Each unit as installed, with ExecStart pointing at stand-ins for the installed commands
    (verify checks that the binary exists and is executable). Any warning fails the test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        message = "systemd-analyze is not installed (Debian: systemd)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    units_dir, bin_dir = tmp_path / "units", tmp_path / "bin"
    units_dir.mkdir()
    bin_dir.mkdir()
    for _, command, _ in unit_commands():
        stand_in = bin_dir / command
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
    for unit in sorted(SYSTEMD.iterdir()):
        text = unit.read_text().replace(INSTALL_BIN, f"{bin_dir}/")
        (units_dir / unit.name).write_text(text)
    to_verify = []
    for unit in sorted(units_dir.iterdir()):
        instance = "8000" if unit.name == WEB_TEMPLATE else "test1"
        name = unit.name.replace("@.", f"@{instance}.")  # a template is verified as an instance
        to_verify.append(str(unit.with_name(name)))
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    result = subprocess.run(
        [analyze, "verify", "--man=no", *to_verify],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
