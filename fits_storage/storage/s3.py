"""The data store as an S3 bucket (any S3-compatible server, via ``s3_endpoint_url``).

Key = ``path/filename``. The md5 of the bytes is kept in the object's metadata (``md5``, as the
system we replace did). After an upload the object is checked with a HEAD: size, metadata md5
and the ETag, which for an unencrypted object is the md5 (single part) or the md5 of the parts'
md5s (multipart, recomputed here for the part size used). When the ETag cannot be predicted
(an encrypting or non-standard server) the object is read back in full instead.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from s3transfer.utils import ChunksizeAdjuster

from fits_storage.storage.atomic import AtomicFile
from fits_storage.storage.base import (
    CHUNK,
    FileStat,
    Md5Mismatch,
    NotInStore,
    StorageError,
    StorageUnavailable,
    Store,
    StoredFile,
    check,
)
from fits_storage.storage.names import relative_name

MIB = 1024 * 1024
MD5_KEY = "md5"


def _translate(exc: Exception, what: str) -> StorageError:
    """botocore's errors as ours: unreachable/5xx are worth retrying, the rest are not."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError"):
            return StorageUnavailable(f"{what}: S3 error {code} ({status})")
        return StorageError(f"{what}: S3 error {code} ({status}): {exc}")
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StorageUnavailable(f"{what}: S3 unreachable: {exc}")
    return StorageError(f"{what}: {exc}")


def _not_found(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


class S3Store(Store):
    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 64 * MIB,
        multipart_chunksize: int = 16 * MIB,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            # Few client-side retries: a store that stays down is the queue's to retry, with
            # its own backoff, instead of holding a worker for many seconds per call.
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10),
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )

    def describe(self, filename: str, path: str = "") -> str:
        return f"s3://{self.bucket}/{relative_name(filename, path)}"

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise _translate(exc, f"s3://{self.bucket}/{key}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"s3://{self.bucket}/{key}") from exc

    def stat(self, filename: str, path: str = "") -> FileStat | None:
        head = self._head(relative_name(filename, path))
        if head is None:
            return None
        mtime_ns = int(head["LastModified"].timestamp()) * 1_000_000_000
        return FileStat(head["ContentLength"], mtime_ns, head.get("Metadata", {}).get(MD5_KEY))

    def info(self, filename: str, path: str = "") -> StoredFile | None:
        head = self._head(relative_name(filename, path))
        if head is None:
            return None
        md5 = head.get("Metadata", {}).get(MD5_KEY)
        if not md5:
            raise StorageError(f"{self.describe(filename, path)} has no md5 in its metadata")
        return StoredFile(head["ContentLength"], md5)

    def _already_there(self, filename: str, path: str, expected: StoredFile) -> bool:
        try:
            return self.info(filename, path) == expected
        except StorageUnavailable:
            raise
        except StorageError:
            return False  # an object without our metadata: overwrite it

    def _hash_source(self, source: Path) -> tuple[StoredFile, str]:
        """The source's size and md5, and the ETag S3 should give it with our transfer config."""
        size = source.stat().st_size
        multipart = size >= self.transfer.multipart_threshold
        part_size = ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, size)
        whole = hashlib.md5()
        parts: list[bytes] = []
        part = hashlib.md5()
        in_part = 0
        total = 0
        with open(source, "rb") as handle:
            while chunk := handle.read(min(CHUNK, part_size - in_part)):
                whole.update(chunk)
                part.update(chunk)
                in_part += len(chunk)
                total += len(chunk)
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.md5(), 0
        if in_part:
            parts.append(part.digest())
        if multipart:
            etag = f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"
        else:
            etag = whole.hexdigest()
        return StoredFile(total, whole.hexdigest()), etag

    def store(
        self, source: Path, filename: str, path: str = "", *, md5: str | None = None
    ) -> StoredFile:
        key = relative_name(filename, path)
        where = self.describe(filename, path)
        here, etag = self._hash_source(Path(source))
        check(here, md5, None, str(source))
        if self._already_there(filename, path, here):
            return here
        try:
            self.client.upload_file(
                str(source),
                self.bucket,
                key,
                ExtraArgs={"Metadata": {MD5_KEY: here.md5}},
                Config=self.transfer,
            )
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, where) from exc
        except Exception as exc:  # s3transfer wraps failures in its own exception types
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BotoCoreError | ClientError):
                raise _translate(cause, where) from exc
            raise StorageError(f"{where}: upload failed: {exc}") from exc
        self.verify(filename, path, here, etag=etag)
        return here

    def verify(
        self, filename: str, path: str, expected: StoredFile, *, etag: str | None = None
    ) -> None:
        """Check the stored object against ``expected``: by HEAD when the ETag tells, else by
        reading it all back. Raises Md5Mismatch."""
        where = self.describe(filename, path)
        head = self._head(relative_name(filename, path))
        if head is None:
            raise Md5Mismatch(f"{where}: not there after upload")
        got = StoredFile(head["ContentLength"], head.get("Metadata", {}).get(MD5_KEY, ""))
        check(got, expected.md5, expected.size, f"{where} (metadata)")
        if etag is None or head.get("ETag", "").strip('"') != etag:
            self.verify_readback(filename, path, expected)

    def verify_readback(self, filename: str, path: str, expected: StoredFile) -> None:
        """Read the whole object back and compare its md5: the check that trusts nothing."""
        digest = hashlib.md5()
        size = 0
        with self.open(filename, path) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        check(
            StoredFile(size, digest.hexdigest()),
            expected.md5,
            expected.size,
            f"{self.describe(filename, path)} (read back)",
        )

    def _get(self, filename: str, path: str) -> dict:
        where = self.describe(filename, path)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=relative_name(filename, path))
        except ClientError as exc:
            if _not_found(exc):
                raise NotInStore(f"{where} does not exist") from exc
            raise _translate(exc, where) from exc
        except BotoCoreError as exc:
            raise _translate(exc, where) from exc

    def open(self, filename: str, path: str = "") -> BinaryIO:
        return self._get(filename, path)["Body"]

    def open_stat(self, filename: str, path: str = "") -> tuple[BinaryIO, FileStat]:
        response = self._get(filename, path)
        mtime_ns = int(response["LastModified"].timestamp()) * 1_000_000_000
        md5 = response.get("Metadata", {}).get(MD5_KEY)
        return response["Body"], FileStat(response["ContentLength"], mtime_ns, md5)

    def fetch(self, filename: str, path: str, dest: Path) -> StoredFile:
        where = self.describe(filename, path)
        response = self._get(filename, path)
        md5 = response.get("Metadata", {}).get(MD5_KEY)
        if not md5:
            raise StorageError(f"{where} has no md5 in its metadata")
        body = response["Body"]
        try:
            with AtomicFile(Path(dest)) as out:
                while chunk := body.read(CHUNK):
                    out.write(chunk)
                return out.commit(md5=md5, size=response["ContentLength"])
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, where) from exc
        finally:
            body.close()

    def list_keys(self, prefix: str = "", delimiter: str = "/") -> Iterator[tuple[str, float]]:
        """(key, modification time as POSIX seconds) of every object whose key starts with
        ``prefix``, a page of at most 1000 at a time (``list_objects_v2``), so that a bucket of
        millions of keys is never held in memory. With ``delimiter`` the keys of deeper
        "directories" are left out, as a directory scan on disk is not recursive."""
        paginator = self.client.get_paginator("list_objects_v2")
        where = f"s3://{self.bucket}/{prefix}"
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter=delimiter
            ):
                for item in page.get("Contents", ()):
                    yield item["Key"], item["LastModified"].timestamp()
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, where) from exc

    @contextmanager
    def local_copy(self, filename: str, path: str, workdir: Path) -> Iterator[Path]:
        """A verified copy in a private directory under ``workdir``, removed afterwards."""
        Path(workdir).mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix=".fetch-", dir=workdir))
        try:
            dest = private / filename
            self.fetch(filename, path, dest)
            yield dest
        finally:
            shutil.rmtree(private, ignore_errors=True)
