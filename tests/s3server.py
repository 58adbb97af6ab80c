"""An S3-compatible HTTP server on loopback (moto's server mode), for tests of the S3 store.

Use it from a test module with ``pytest_plugins = ["tests.s3server"]``; the fixtures are
``s3_endpoint`` (one server per test session) and ``s3_bucket`` (a fresh bucket per test, with
dummy credentials in the environment so that boto3 and subprocesses find them).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server running in this process, on a free loopback port."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the test server; dummy AWS credentials are set in the env."""
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def seed_objects(bucket: str, keys: list[str], body: bytes = b"") -> None:
    """Put many small objects at once, straight into the test server's store (moto's backend
    in this process): thousands of PUTs over HTTP would take a minute on a loaded machine.
    Everything read back (listing, HEAD, GET) still goes through the server over HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(bucket, key, body)
