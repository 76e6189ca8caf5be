"""HTTP cache policy for project pages (RFC 9111, the parts a simple-API client needs).

An explicit ``Cache-Control: max-age`` or ``Expires`` wins (``s-maxage`` is for shared
caches; burrowd's is private, per user). ``no-store`` and ``no-cache`` make the page
revalidate on every use. A 200 that carries none of them gets the
heuristic freshness lifetime RFC 9111 section 4.2.2 allows: ``BURROW_INDEX_TTL`` (default
600 s, the public index's own ``max-age``), or an index's own override. Validators (ETag,
Last-Modified) are kept for conditional revalidation, which costs a 304.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from burrowd.daemon.index.models import CachePolicy

__all__ = ["conditional_headers", "policy_from_headers", "revalidated"]


def _directives(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        key, _, arg = part.strip().partition("=")
        if key:
            out[key.strip().lower()] = arg.strip().strip('"')
    return out


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def policy_from_headers(
    headers: Mapping[str, str], *, heuristic_ttl: float, now: float | None = None
) -> CachePolicy:
    """Return the cache policy of a response with ``headers``."""
    now = time.time() if now is None else now
    etag = headers.get("ETag") or None
    last_modified = headers.get("Last-Modified") or None
    cc = _directives(headers.get("Cache-Control", ""))
    try:
        age = float(headers.get("Age", "0") or 0)
    except ValueError:
        age = 0.0
    if "no-store" in cc or "no-cache" in cc:
        return CachePolicy(now, 0.0, "no-cache", etag, last_modified)
    if "max-age" in cc:
        try:
            lifetime = float(cc["max-age"])
        except ValueError:
            lifetime = -1.0
        if lifetime >= 0:
            return CachePolicy(now - age, lifetime, "max-age", etag, last_modified)
    expires = _http_date(headers.get("Expires"))
    if "Expires" in headers:
        date = _http_date(headers.get("Date")) or now
        lifetime = (expires - date) if expires is not None else 0.0
        return CachePolicy(now - age, max(0.0, lifetime), "expires", etag, last_modified)
    return CachePolicy(now - age, heuristic_ttl, "heuristic", etag, last_modified)


def revalidated(
    old: CachePolicy, headers: Mapping[str, str], *, heuristic_ttl: float, now: float | None = None
) -> CachePolicy:
    """Return the policy after a 304: fresh again, keeping validators the 304 omits."""
    new = policy_from_headers(headers, heuristic_ttl=heuristic_ttl, now=now)
    return CachePolicy(
        new.stored_at,
        new.lifetime,
        new.source,
        new.etag or old.etag,
        new.last_modified or old.last_modified,
        old.mtime_ns,
    )


def conditional_headers(policy: CachePolicy) -> dict[str, str]:
    """Return the headers that make a request conditional on the stored validators."""
    out: dict[str, str] = {}
    if policy.etag:
        out["If-None-Match"] = policy.etag
    if policy.last_modified:
        out["If-Modified-Since"] = policy.last_modified
    return out
