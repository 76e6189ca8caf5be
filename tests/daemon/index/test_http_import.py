"""aiohttp is loaded lazily and reads no CA store: the daemon's own verified context (built
in a worker thread meanwhile) holds the trust anchors."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, ssl, sys
from burrowd.daemon.index import http
before = "aiohttp.connector" in sys.modules
http.aiohttp.ClientSession  # the first attribute access executes aiohttp
import aiohttp.connector as connector
verified, unverified = connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED
print(json.dumps({
    "loaded_before": before,
    "verified_mode": int(verified.verify_mode),
    "verified_store": verified.cert_store_stats()["x509_ca"],
    "expected_store": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "unverified_mode": int(unverified.verify_mode),
    "unverified_store": unverified.cert_store_stats()["x509_ca"],
    "patch_left": "set_default_verify_paths" in vars(ssl.SSLContext),
    "later_store": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "later_bare": (lambda c: (c.set_default_verify_paths(), c.cert_store_stats()["x509_ca"])[1])(
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ),
    "own_mode": int(http.verified_context().verify_mode),
    "own_hostname": http.verified_context().check_hostname,
    "own_store": http.verified_context().cert_store_stats()["x509_ca"],
}))
"""


def test_aiohttp_loads_late_and_reads_no_ca_store_the_daemons_context_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["loaded_before"] is False
    assert seen["expected_store"] > 0  # the system has trust anchors, else this proves nothing
    # aiohttp's default contexts load nothing: its verified one refuses every server (it
    # fails closed), and the daemon never uses it (test_http_tls checks the connector's).
    assert seen["verified_mode"] == 2  # ssl.CERT_REQUIRED
    assert seen["verified_store"] == 0
    assert seen["unverified_mode"] == 0  # ssl.CERT_NONE
    assert seen["unverified_store"] == 0
    # The context every request uses verifies the certificate and the host name, with every
    # trust anchor the system has.
    assert seen["own_mode"] == 2
    assert seen["own_hostname"] is True
    assert seen["own_store"] == seen["expected_store"]
    # The shortcut is gone once aiohttp is loaded: other contexts load the store as usual.
    assert seen["patch_left"] is False
    assert seen["later_store"] == seen["expected_store"]
    assert seen["later_bare"] == seen["expected_store"]
