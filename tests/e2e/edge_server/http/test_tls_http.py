"""The gRPC side's --tls-* settings make the HTTP port HTTPS, with mTLS when a client CA
is given: a client with a certificate from that CA is answered, others are refused in
the handshake. With --workers 2 every process serves HTTPS on the shared port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.support.certs import make_pki
from tests.support.http_gateway import DIGIT_3, copy_models
from tests.support.metrics_text import samples
from tests.support.processes import ServerProcess

CONNECTIONS = 16  # P(all on one of 2 processes) = 2 * 0.5**16


@pytest.mark.parametrize("workers", ["1", "2"])
def test_https_with_client_certificates(tmp_path: Path, workers: str) -> None:
    pki = make_pki(tmp_path / "pki")
    server = ServerProcess(
        ["--model-root", str(copy_models(tmp_path)), "--tls-cert", str(pki.server_cert),
         "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca_cert),
         "--workers", workers]
    )  # fmt: skip
    try:
        base = f"https://127.0.0.1:{server.http_port}"
        mine = (str(pki.client_cert), str(pki.client_key))
        deadline = time.monotonic() + 30
        ca = str(pki.ca_cert)
        while requests.get(f"{base}/readyz", cert=mine, verify=ca, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never ready:\n" + "".join(server.log)
            time.sleep(0.1)
        while workers == "2" and not any("worker 1 (pid" in line for line in server.log):
            assert time.monotonic() < deadline, "no replica:\n" + "".join(server.log)
            time.sleep(0.1)  # it joins the ports once its models serve
        for _ in range(CONNECTIONS):  # each on a fresh connection and TLS handshake
            reply = requests.post(
                f"{base}/predict",
                files={"image": DIGIT_3.read_bytes()},
                cert=mine,
                verify=ca,
                timeout=10,
            )
            assert reply.status_code == 200 and reply.json()["class_id"] == 3
        page = requests.get(f"{base}/metrics", cert=mine, verify=ca, timeout=10).text
        labels = dict(method="http_predict", model="digits", version="1", code="OK")
        served = samples(page, "edge_requests_total", **labels)
        assert len(served) == int(workers) and min(served) > 0, served  # every process
        assert sum(served) == CONNECTIONS
        other = (str(pki.other_ca_client_cert), str(pki.other_ca_client_key))
        for cert in (other, None):
            # TLS 1.3: the client may learn of the refusal only as a closed connection.
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"{base}/healthz", cert=cert, verify=ca, timeout=5)
        with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP on the TLS port
            requests.get(f"http://127.0.0.1:{server.http_port}/healthz", timeout=5)
    finally:
        if server.terminate() != 0:
            server.kill()
