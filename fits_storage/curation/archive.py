"""Is a file safely at the archive? Asked of the archive's ``/jsonfilelist``, as the exporter
asks before sending (:class:`fits_storage.export.DestinationClient`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fits_storage.export.client import DestinationClient, DestinationUnavailable, ExportClientError
from fits_storage.export.exporter import remote_name_for

__all__ = ["ArchiveUnreachable", "ArchiveChecker", "Verdict"]


class ArchiveUnreachable(RuntimeError):
    """An archive did not answer: nothing may be deleted on its word, so the run stops."""


@dataclass(frozen=True)
class Verdict:
    """What the archives say of one file: ``confirmed`` only if every one holds this md5."""

    confirmed: bool
    reason: str


@dataclass
class ArchiveChecker:
    """HTTP clients to the archives whose copies must all be confirmed before a delete."""

    urls: tuple[str, ...]
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    _clients: list[DestinationClient] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no archive to ask: set export_destinations or give --archive")
        self._clients = [
            DestinationClient(
                url, "", connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
            )
            for url in self.urls
        ]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def verdict(self, filename: str, data_md5: str) -> Verdict:
        """Whether every archive lists ``filename`` (or its ``.bz2``) as present with the data
        md5 ``data_md5``; :class:`ArchiveUnreachable` when one does not answer."""
        for client in self._clients:
            try:
                items = client.file_list(remote_name_for(filename))
            except DestinationUnavailable as exc:
                raise ArchiveUnreachable(str(exc)) from exc
            except ExportClientError as exc:
                return Verdict(False, f"{client.base_url} gave no usable answer ({exc})")
            held = {str(item.get("data_md5")) for item in items if item.get("present", True)}
            if not held:
                return Verdict(False, f"{client.base_url} does not hold it")
            if data_md5 not in held:
                others = ", ".join(sorted(held))
                return Verdict(False, f"{client.base_url} holds it with another md5 ({others})")
        return Verdict(True, "md5 confirmed at " + ", ".join(c.base_url for c in self._clients))
