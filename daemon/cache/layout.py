"""The cache's directory layout: versioned buckets and the keys of their entries.

A format change gets a new bucket version (``wheels-v1``), never a migration; ``cache.prune``
removes directories of other versions.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["CACHEDIR_TAG", "Bucket", "digest", "url_digest"]

CACHEDIR_TAG: Final = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by burrowd.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


class Bucket(enum.Enum):
    """One kind of cache entry, stored under a versioned directory."""

    SIMPLE = "simple-v0"
    """Parsed project pages with their HTTP cache policy::

        simple-v0/<index-digest>/<name>.msgpack
    """

    WHEELS = "wheels-v0"
    """Pointers from a wheel (by source and full filename) to its unpacked archive::

        wheels-v0/index/<index-digest>/<name>/<wheel filename>          pointer (msgpack)
        wheels-v0/index/<index-digest>/<name>/<wheel filename>.meta     parsed core metadata
        wheels-v0/url/<url-digest>/<wheel filename>
        wheels-v0/path/<path-digest>/<wheel filename>                   + source mtime/size
    """

    BUILT_WHEELS = "built-wheels-v0"
    """Wheels built from source, one directory per source revision::

        built-wheels-v0/index/<index-digest>/<name>/<sdist>/<revision>/
        built-wheels-v0/url/<url-digest>/<revision>/
        built-wheels-v0/path/<path-digest>/<revision>/
        built-wheels-v0/git/<repo-digest>/<commit>/<revision>/
        .../<revision>/<wheel filename>          the built wheel
        .../<revision>/metadata.msgpack          its core metadata (or the prepared one)
        .../<revision>/source/<sdist filename>   a downloaded sdist, kept to build again
    """

    ARCHIVE = "archive-v0"
    """Unpacked wheel trees, named by the wheel's sha256, immutable once renamed in::

        archive-v0/<sha256>/<package files>, <name>-<version>.dist-info/
        archive-v0/<sha256>/.burrow-archive                           manifest (msgpack)
    """

    GIT = "git-v0"
    """Git repositories fetched once, checked out once per commit::

        git-v0/db/<repo-digest>/
        git-v0/checkouts/<repo-digest>/<commit>/
    """

    BUILD_ENVIRONMENTS = "build-envs-v0"
    """Isolated build environments, one per set of resolved build requirements::

        build-envs-v0/<digest of interpreter and pins>/          a virtual environment
        build-envs-v0/<digest>/.burrow-ready                      written last
    """

    INTERPRETER = "interpreter-v0"
    """What a Python interpreter reported about itself::

        interpreter-v0/<executable-digest>.msgpack     validated by the executable's mtime
    """

    @property
    def stem(self) -> str:
        """Return the bucket's name without its version (``wheels``)."""
        return self.value.rsplit("-v", 1)[0]


_VERSIONED = re.compile(r"^(?P<stem>[a-z-]+)-v(?P<version>\d+)$")


def bucket_version_of(dirname: str) -> tuple[str, int] | None:
    """Return ``(stem, version)`` when ``dirname`` looks like a bucket directory."""
    m = _VERSIONED.match(dirname)
    if m is None:
        return None
    return m["stem"], int(m["version"])


def digest(text: str) -> str:
    """Return a short, filesystem-safe digest of ``text`` (16 hex digits)."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def url_digest(url: str) -> str:
    """Return the digest of a URL with its fragment and credentials dropped."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return digest(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
