"""Generated raw requests against the gateway's HTTP endpoint (edge_server/http/server.py,
aiohttp) over a real socket: each gets a status line the endpoint documents, or the
connection closes; it never hangs, never logs a failure to answer (neither the gateway
nor aiohttp), and a good GET /healthz is answered after every one."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.fuzzing import mutated_bytes
from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.model_factory import build_model_root

ANSWERS = {200, 400, 404, 405, 413, 431, 503}
# A request aiohttp cannot parse is answered as HTTP/1.0: it does not know what the client speaks.
STATUS_LINE_STARTS = (b"HTTP/1.1 ", b"HTTP/1.0 ")
LOGGERS = ("edge_server.http", "aiohttp.server", "aiohttp.web")
TIMEOUT_S = 10.0  # above the endpoint's READ_TIMEOUT_S: a hang, not a slow client


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def http_port() -> Iterator[tuple[int, _Failures]]:
    failures = _Failures()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(failures)
    with tempfile.TemporaryDirectory() as folder:
        running = ThreadedGateway(gateway_settings(build_model_root(Path(folder) / "models")))
        try:
            yield running.gateway.http.port, failures
        finally:
            running.stop()
            for logger in loggers:
                logger.removeHandler(failures)


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, end our side, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed first (a head over its limit): reset, ENOTCONN...
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"no answer and no close within {TIMEOUT_S} s")
        return b"".join(chunks)


def _check(port: int, failures: _Failures, data: bytes) -> None:
    answer = _exchange(port, data)
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(STATUS_LINE_STARTS), status_line
        assert int(status_line.split()[1]) in ANSWERS, status_line
        if int(status_line.split()[1]) == 200 and not data.startswith(b"HEAD"):
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b"Content-Length: %d\r\n" % len(body) in head
    assert not failures.records, failures.records[0].getMessage()
    health = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 "), health[:80]


_TOKEN = st.text(st.characters(codec="latin-1"), max_size=12)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "get", "", "G ET"]) | _TOKEN)
    path = draw(
        st.sampled_from(["/healthz", "/metrics", "/readyz", "/livez", "/", "*", "/healthz?x=1"])
        | _TOKEN
    )
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]) | _TOKEN)
    headers = draw(st.lists(st.tuples(_TOKEN, _TOKEN), max_size=4))
    separator = draw(st.sampled_from([" ", "  ", "\t", "\x0b", "\x85", "\xa0"]))
    line = separator.join(part for part in (method, path, version))
    head = "\r\n".join([line, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n"
    body = draw(st.binary(max_size=32))
    return head.encode("latin-1") + body


@given(requests() | mutated_bytes(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
def test_generated_requests_are_answered_or_closed(
    http_port: tuple[int, _Failures], data: bytes
) -> None:
    _check(*http_port, data)


@given(st.binary(max_size=256))
@example(data=b"\r\n\r\n")
@example(data=b"\x00" * 64)
def test_raw_bytes_are_answered_or_closed(http_port: tuple[int, _Failures], data: bytes) -> None:
    _check(*http_port, data)


@given(st.integers(8_000, 200_000), st.sampled_from([b"GET /", b"X-Big: "]))
@example(size=70_000, prefix=b"GET /")
def test_oversized_heads_are_answered_or_closed(
    http_port: tuple[int, _Failures], size: int, prefix: bytes
) -> None:
    if prefix == b"GET /":
        data = b"GET /" + b"a" * size + b" HTTP/1.1\r\n\r\n"
    else:
        data = b"GET /healthz HTTP/1.1\r\n" + prefix + b"b" * size + b"\r\n\r\n"
    _check(*http_port, data)
