"""Fixtures for the http trigger's tests: a scriptable SSE server, plain and with a throwaway CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.sse_server import SSEServer


@pytest.fixture
def server() -> Iterator[SSEServer]:
    """A plain-HTTP server on 127.0.0.1; routes are set by the test."""
    srv = SSEServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The throwaway CA as a PEM file, as PROXBOX_API_CA_BUNDLE would name it."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[SSEServer]:
    """An HTTPS server whose certificate (for 127.0.0.1) is signed by the throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    srv = SSEServer(tls=context).start()
    yield srv
    srv.stop()
