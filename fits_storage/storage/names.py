"""Which file and directory names may enter the system: the guard against escaping a root.

Names arrive from the network (upload URLs) and end up as paths on disk and keys in S3, so
only a conservative alphabet is accepted and nothing that could climb out of a directory.
Names starting with '.' are refused, so the system keeps its own files (database, logs, locks,
staging) under a hidden directory of ``storage_root``; a configuration that puts one of them
elsewhere inside a directory where data names become paths gets that name reserved instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

NAME_RE = re.compile(r"[A-Za-z0-9._+-]+")
# 255 is the file system's limit; a file is written as ``.<name>.<8 random>.part`` first
# (15 characters more), and that temporary name must fit too.
MAX_COMPONENT = 240
MAX_PATH = 1024


class BadName(ValueError):
    """A file name or path that is refused; the message says why."""


class ReservedName(BadName):
    """A name that would reach one of the system's own files or directories."""


def check_component(component: str) -> str:
    """One path component: the allowed alphabet, not hidden, not ``.``/``..``, not too long."""
    if not component:
        raise BadName("empty path component")
    if len(component) > MAX_COMPONENT:
        raise BadName(f"path component longer than {MAX_COMPONENT} characters")
    if not NAME_RE.fullmatch(component):
        raise BadName(f"{component!r} has characters outside [A-Za-z0-9._+-]")
    if component.startswith("."):
        raise BadName(f"{component!r} starts with '.'")
    return component


def check_path(path: str) -> str:
    """A relative directory ('' for none) made of checked components separated by '/'."""
    if path == "":
        return path
    if len(path) > MAX_PATH:
        raise BadName(f"path longer than {MAX_PATH} characters")
    if path.startswith("/"):
        raise BadName("absolute paths are not accepted")
    for component in path.split("/"):
        check_component(component)
    return path


def split_target(target: str) -> tuple[str, str]:
    """``'a/b/N1.fits'`` -> ``('a/b', 'N1.fits')``, every part checked; raises BadName."""
    if len(target) > MAX_PATH:
        raise BadName(f"path longer than {MAX_PATH} characters")
    path, _, filename = target.rpartition("/")
    if target.startswith("/"):
        raise BadName("absolute paths are not accepted")
    return check_path(path), check_component(filename)


def relative_name(filename: str, path: str = "") -> str:
    """``path/filename`` (or just ``filename``): a relative path and an S3 key."""
    check_path(path)
    check_component(filename)
    return f"{path}/{filename}" if path else filename


def reserved_within(root: Path, owned: Iterable[Path]) -> tuple[str, ...]:
    """The paths in ``owned`` that lie inside ``root``, relative to it: the names a data file
    must never take under ``root`` (symlinks resolved, so an alias cannot hide one)."""
    base = Path(root).resolve()
    reserved = []
    for path in owned:
        resolved = Path(path).resolve()
        if resolved != base and resolved.is_relative_to(base):
            reserved.append(resolved.relative_to(base).as_posix())
    return tuple(reserved)


def check_unreserved(name: str, reserved: Iterable[str]) -> str:
    """Refuse ``name`` (``path/filename``) if it is, lies inside, or contains a reserved name."""
    for taken in reserved:
        if name == taken or name.startswith(taken + "/") or taken.startswith(name + "/"):
            raise ReservedName(f"{name!r} is reserved for the system's own files ({taken})")
    return name
