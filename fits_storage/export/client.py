"""Talking to one export destination over HTTP (docs/export.md).

Two requests: the destination's file list for one name (is it there already, with which md5,
is an ingest pending?) and the upload itself. Failures are sorted here into what the exporter
needs to decide: the destination is unavailable (back off the whole destination), the server
failed on this upload (retry this file later), or the server refused (a person must look).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from fits_storage.export.spool import CHUNK_BYTES, Payload

AUTH_COOKIE = "gemini_fits_upload_auth"
# Answers that mean "the destination as a whole is not serving now", whatever the file.
UNAVAILABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
MESSAGE_CHARS = 500


class ExportClientError(Exception):
    """Base of the exporter's HTTP errors."""


class DestinationUnavailable(ExportClientError):
    """Network error, timeout, or an answer saying the destination is not serving now."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UploadServerError(ExportClientError):
    """The destination answered the file query but failed (5xx) on this upload."""


class DestinationRefused(ExportClientError):
    """A 4xx answer: retrying the same request will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BadAnswer(ExportClientError):
    """An answer that cannot be read, or that does not confirm the bytes sent."""


@dataclass
class SendingBody:
    """The request body: the payload's file in large chunks.

    Having ``__len__`` and no ``read`` makes requests send a Content-Length and urllib3 send
    our chunks as they are (1 MiB, not its 16 kB default), so memory is one chunk whatever the
    file size. The bytes are not hashed again here: the destination checks them against the
    md5 we state, and echoes what it received.
    """

    payload: Payload
    chunk: int = CHUNK_BYTES
    sent: int = 0

    def __len__(self) -> int:
        return self.payload.size

    def __iter__(self) -> Iterator[bytes]:
        self.sent = 0
        with open(self.payload.path, "rb") as src:
            while block := src.read(self.chunk):
                self.sent += len(block)
                yield block


@dataclass
class Receipt:
    """What the destination says it received."""

    filename: str
    path: str
    size: int
    md5: str


class DestinationClient:
    """HTTP to one destination base URL, over one kept-alive session."""

    def __init__(
        self,
        base_url: str,
        auth_cookie: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "fits_storage-exporter"
        self.auth_cookie = auth_cookie

    def close(self) -> None:
        self.http.close()

    # -- asking -------------------------------------------------------------------------------

    def file_list(self, filename: str) -> list[dict[str, Any]]:
        """What the destination holds under ``filename`` (present files, and pending ingest)."""
        url = f"{self.base_url}/jsonfilelist/present/filename={quote(filename, safe='')}"
        response = self._send("GET", url)
        if response.status_code >= 500:
            raise DestinationUnavailable(f"{_describe(response)} from {url}")
        if response.status_code >= 400:
            raise DestinationRefused(f"{_describe(response)} from {url}", response.status_code)
        try:
            answer = response.json()
        except ValueError as exc:
            raise BadAnswer(f"unreadable file list from {url}: {_snippet(response)}") from exc
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise BadAnswer(f"file list from {url} is not a list of objects: {_snippet(response)}")
        return answer

    # -- sending ------------------------------------------------------------------------------

    def upload_url(self, path: str, filename: str) -> str:
        parts = [quote(part, safe="") for part in path.strip("/").split("/") if part]
        return "/".join([self.base_url, "upload_file", *parts, quote(filename, safe="")])

    def upload(self, path: str, filename: str, payload: Payload) -> Receipt:
        """POST the payload, stating its md5, and return what the destination says it got."""
        url = self.upload_url(path, filename)
        body = SendingBody(payload)
        response = self._send(
            "POST",
            url,
            data=body,
            params={"md5": payload.md5},
            headers={
                "Content-Type": "application/octet-stream",
                "Content-MD5": payload.md5,
            },
            cookies={AUTH_COOKIE: self.auth_cookie},
        )
        if response.status_code >= 500:
            message = f"{_describe(response)} from {url}"
            if response.status_code in UNAVAILABLE_STATUSES:
                raise DestinationUnavailable(message, _retry_after(response))
            raise UploadServerError(message)
        if response.status_code >= 400:
            raise DestinationRefused(f"{_describe(response)} from {url}", response.status_code)
        return _receipt(response, url)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise DestinationUnavailable(f"timed out: {method} {url}") from exc
        except requests.ConnectionError as exc:
            raise DestinationUnavailable(f"cannot connect: {method} {url}: {_root(exc)}") from exc
        except requests.RequestException as exc:
            raise DestinationUnavailable(f"{method} {url} failed: {_root(exc)}") from exc
        if response.status_code in UNAVAILABLE_STATUSES:
            raise DestinationUnavailable(
                f"{_describe(response)} from {url}", _retry_after(response)
            )
        return response


def _receipt(response: requests.Response, url: str) -> Receipt:
    try:
        answer = response.json()
        item = answer[0] if isinstance(answer, list) else answer
        return Receipt(
            filename=str(item["filename"]),
            path=str(item.get("path") or ""),
            size=int(item["size"]),
            md5=str(item["md5"]).lower(),
        )
    except (ValueError, LookupError, TypeError) as exc:
        raise BadAnswer(f"unreadable upload answer from {url}: {_snippet(response)}") from exc


def _describe(response: requests.Response) -> str:
    """``HTTP 403 Forbidden: <the server's own message>``."""
    return f"HTTP {response.status_code} {response.reason or ''}".rstrip() + _message(response)


def _message(response: requests.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:MESSAGE_CHARS]}" if text else ""
    if isinstance(answer, dict):
        for key in ("detail", "error", "message"):
            if key in answer:
                detail = answer[key]
                text = detail if isinstance(detail, str) else json.dumps(detail)
                return f": {text[:MESSAGE_CHARS]}"
    return f": {json.dumps(answer)[:MESSAGE_CHARS]}"


def _snippet(response: requests.Response) -> str:
    text = response.text.strip()
    return repr(text[:200]) if text else "(empty body)"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _root(exc: BaseException) -> str:
    """The innermost cause, which names the real problem (refused, reset, no route...)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return f"{type(exc).__name__}: {exc}"
