"""The key that signs staff session cookies: ``web_secret_key``, or one generated once and kept
in ``<storage_root>/.fits_storage/web_secret_key`` (mode 0600), so that sessions survive a
restart and every web process on the host signs alike."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fits_storage.config import Config

KEY_FILE = "web_secret_key"


def secret_key_file(config: Config) -> Path:
    return config.system_dir / KEY_FILE


def web_secret_key(config: Config) -> bytes:
    """The configured key, else the kept one, made on first use (the first writer wins)."""
    if config.web_secret_key:
        return config.web_secret_key.encode()
    path = secret_key_file(config)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(4)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and refuses to replace a key another process made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable key: remove it and restart")
    return key.encode()
