"""Where preview JPEGs live: beside the data (local disk or S3), under a reserved prefix.

Locally they are files under ``<storage_root>/.fits_storage/previews/``; in S3, objects under
the key prefix ``.fits_storage/previews/`` of the data bucket. No data name can reach either:
data names never start with '.' (storage/names.py). Every write is atomic (a temporary name
renamed on local disk; a single PUT, checked by its md5, in S3), and a key names one picture's
bytes (it holds their md5), so a new picture never overwrites one that a reader may be fetching:
it is written under its own key and the rows are switched to it.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

from fits_storage.config import SYSTEM_DIR, Config
from fits_storage.storage.atomic import AtomicFile
from fits_storage.storage.base import NotInStore, StorageError
from fits_storage.storage.names import check_component

PREFIX = f"{SYSTEM_DIR}/previews"


def preview_key(filename: str, size: str, md5: str) -> str:
    """``N20251123/N20251123S0042.fits.full.<md5>.jpg``: grouped by the name's first nine
    characters (a night of one site), so no directory grows without bound."""
    check_component(filename)
    return f"{filename[:9]}/{filename}.{size}.{md5}.jpg"


class PreviewStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically and verified."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key`` (NotInStore when there are none)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""


class LocalPreviewStore(PreviewStore):
    def __init__(self, root: Path, file_mode: int | None = None) -> None:
        self.root = Path(root)
        self.file_mode = file_mode

    def path_of(self, key: str) -> Path:
        parts = key.split("/")
        for part in parts:
            check_component(part)
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        with AtomicFile(self.path_of(key), self.file_mode) as out:
            out.write(data)
            out.commit(md5=hashlib.md5(data).hexdigest(), size=len(data))

    def get(self, key: str) -> bytes:
        try:
            return self.path_of(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotInStore(f"preview {key} is not in {self.root}") from exc

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)


class S3PreviewStore(PreviewStore):
    def __init__(self, client: object, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def _key(self, key: str) -> str:
        for part in key.split("/"):
            check_component(part)
        return f"{PREFIX}/{key}"

    def put(self, key: str, data: bytes) -> None:
        from fits_storage.storage.s3 import _translate

        digest = hashlib.md5(data)
        try:
            # S3 refuses a PUT whose body does not match Content-MD5: nothing partial is kept.
            self.client.put_object(  # type: ignore[attr-defined]
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ContentType="image/jpeg",
                ContentMD5=base64.b64encode(digest.digest()).decode(),
                Metadata={"md5": digest.hexdigest()},
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors, translated
            raise _translate(exc, f"s3://{self.bucket}/{self._key(key)}") from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        from fits_storage.storage.s3 import _not_found, _translate

        where = f"s3://{self.bucket}/{self._key(key)}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))  # type: ignore[attr-defined]
            return response["Body"].read()
        except ClientError as exc:
            if _not_found(exc):
                raise NotInStore(f"preview {where} does not exist") from exc
            raise _translate(exc, where) from exc
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, where) from exc

    def delete(self, key: str) -> None:
        from fits_storage.storage.s3 import _translate

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, f"s3://{self.bucket}/{self._key(key)}") from exc


def get_preview_store(config: Config) -> PreviewStore:
    """The preview store beside this configuration's data store."""
    if config.using_s3:
        from fits_storage.storage.s3 import S3Store

        data = S3Store(config.s3_bucket_name, config.s3_endpoint_url or None)
        return S3PreviewStore(data.client, config.s3_bucket_name)
    return LocalPreviewStore(config.system_dir / "previews", config.file_mode)


__all__ = [
    "LocalPreviewStore",
    "PreviewStore",
    "S3PreviewStore",
    "StorageError",
    "get_preview_store",
    "preview_key",
]
