"""aiohttp is loaded lazily and reads no CA store: the daemon's own verified context (built
in a worker thread meanwhile) holds the trust anchors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

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


def _run(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (aiohttp not loaded yet); return its JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return seen


def test_aiohttp_loads_late_and_reads_no_ca_store_the_daemons_context_does() -> None:
    seen = _run(PROBE)
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


RACE = """
import importlib.machinery, json, ssl, threading, types
from burrowd.daemon.index import http

class Inner(importlib.machinery.SourceFileLoader):
    # Stands for aiohttp's own loader: while it executes, another thread builds the
    # daemon's context (as the worker thread does when aiohttp loads at the same time).
    def __init__(self):
        pass
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        built = []
        worker = threading.Thread(target=lambda: built.append(http.verified_context()))
        worker.start()
        worker.join()
        module.other_thread = built[0].cert_store_stats()["x509_ca"]
        module.this_thread = ssl.create_default_context().cert_store_stats()["x509_ca"]

module = types.ModuleType("fake_aiohttp")
http._AiohttpLoader(Inner()).exec_module(module)
print(json.dumps({
    "other_thread": module.other_thread,
    "this_thread": module.this_thread,
    "expected": ssl.create_default_context().cert_store_stats()["x509_ca"],
}))
"""


def test_a_context_built_in_another_thread_while_aiohttp_loads_has_the_whole_store() -> None:
    # The shortcut patches the shared ssl.SSLContext class: it must only ever apply to the
    # thread that executes aiohttp (a race here left the daemon's context without anchors).
    seen = _run(RACE)
    assert seen["expected"] > 0
    assert seen["other_thread"] == seen["expected"]
    assert seen["this_thread"] == 0
