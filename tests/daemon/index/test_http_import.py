"""aiohttp is loaded lazily, with an unverified TLS context that skips the CA store."""

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
}))
"""


def test_aiohttp_loads_late_and_only_its_verified_context_reads_the_ca_store() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["loaded_before"] is False
    # The context ``ssl=True`` uses verifies, with every trust anchor the system has.
    assert seen["verified_mode"] == 2  # ssl.CERT_REQUIRED
    assert seen["verified_store"] == seen["expected_store"]
    # The one that verifies nothing loads nothing.
    assert seen["unverified_mode"] == 0  # ssl.CERT_NONE
    assert seen["unverified_store"] == 0
    # The shortcut is gone once aiohttp is loaded: other contexts load the store as usual.
    assert seen["patch_left"] is False
    assert seen["later_store"] == seen["expected_store"]
    assert seen["later_bare"] == seen["expected_store"]
