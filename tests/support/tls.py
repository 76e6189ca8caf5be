"""A test certificate authority, and a server certificate it issued for 127.0.0.1 only.

Made with the ``openssl`` command (tests that need it skip when :data:`HAVE_OPENSSL` is
false): a client trusts the authority through ``SSL_CERT_FILE``; the certificate names the
IP address 127.0.0.1 and no host name, so ``https://localhost:...`` is a name mismatch.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import NamedTuple

__all__ = ["HAVE_OPENSSL", "Pki", "issue_pki", "server_context"]

HAVE_OPENSSL = shutil.which("openssl") is not None


class Pki(NamedTuple):
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def issue_pki(d: Path) -> Pki:
    """Write a test authority and a certificate it issued for 127.0.0.1 into ``d``."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=burrowd test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr",
             cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "srv.pem",
             cwd=d)  # fmt: skip
    return Pki(d / "ca.pem", d / "srv.pem", d / "srv.key")


def server_context(pki: Pki) -> ssl.SSLContext:
    """Return a server-side TLS context presenting ``pki``'s certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    return context
