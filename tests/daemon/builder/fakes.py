"""Build backends for the builder's tests, as module source text that builds run.

- :func:`fake_setuptools`: a "setuptools" distribution to serve on the fake index. Its
  ``setuptools.build_meta:__legacy__`` runs the project's ``setup.py`` against a ``setup()``
  that only records its arguments, then writes the wheel itself (standard library only), with
  ``Generator: fake-setuptools <version>`` in its ``WHEEL`` file, so a test can tell which
  backend, at which version, built a wheel.
- :data:`FAILING_BACKEND`: the in-tree test backend whose metadata and wheel hooks raise
  ``RuntimeError("boom")``.
- :data:`RECORDING_BACKEND`: the in-tree test backend that writes the ``sys.prefix`` of the
  interpreter that ran ``build_wheel`` into ``built_with.txt`` of the source tree.

The last two live beside ``burrow_test_backend`` in a tree's ``backend-path`` directory.
"""

from __future__ import annotations

from tests.support.dists import DistSpec

__all__ = [
    "FAILING_BACKEND",
    "RECORDING_BACKEND",
    "RECORDING_FILE",
    "fake_generator",
    "fake_setuptools",
]

_SETUPTOOLS_INIT = '''\
"""Not setuptools: ``setup()`` records its keyword arguments for ``build_meta``."""

__version__ = {version!r}
calls = []


def setup(**kwargs):
    calls.append(kwargs)


def find_packages(*args, **kwargs):
    return []
'''

_BUILD_META = '''\
"""Not setuptools: a PEP 517 ``__legacy__`` backend that builds from ``setup.py`` alone."""

import base64
import hashlib
import os
import re
import runpy
import sys
import zipfile

import setuptools

GENERATOR = "fake-setuptools " + setuptools.__version__


def _setup_kwargs():
    setuptools.calls.clear()
    sys.path.insert(0, os.getcwd())
    runpy.run_path("setup.py", run_name="__main__")
    if not setuptools.calls:
        raise RuntimeError("setup.py did not call setup()")
    return setuptools.calls[-1]


def _escape(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info(kw):
    return "%s-%s.dist-info" % (_escape(kw["name"]), kw["version"])


def _metadata(kw):
    lines = ["Metadata-Version: 2.1", "Name: " + kw["name"], "Version: " + kw["version"]]
    if kw.get("python_requires"):
        lines.append("Requires-Python: " + kw["python_requires"])
    lines.extend("Requires-Dist: " + req for req in kw.get("install_requires", []))
    for key, reqs in kw.get("extras_require", {}).items():
        extra, _, marker = key.partition(":")
        lines.append("Provides-Extra: " + extra)
        clause = 'extra == "%s"' % extra
        if marker:
            clause = "(%s) and %s" % (marker, clause)
        lines.extend("Requires-Dist: %s; %s" % (req, clause) for req in reqs)
    return ("\\n".join(lines) + "\\n").encode()


def _members(kw):
    dist_info = _dist_info(kw)
    members = []
    for package in kw.get("packages", []):
        folder = package.replace(".", "/")
        for name in sorted(os.listdir(folder)):
            if os.path.isfile(os.path.join(folder, name)):
                with open(os.path.join(folder, name), "rb") as fh:
                    members.append((folder + "/" + name, fh.read()))
    for module in kw.get("py_modules", []):
        with open(module + ".py", "rb") as fh:
            members.append((module + ".py", fh.read()))
    members.append((dist_info + "/METADATA", _metadata(kw)))
    wheel = "Wheel-Version: 1.0\\nGenerator: %s\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    members.append((dist_info + "/WHEEL", (wheel % GENERATOR).encode()))
    return members


def _record(members, record):
    lines = []
    for arcname, data in members:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        lines.append("%s,sha256=%s,%d" % (arcname, digest.decode(), len(data)))
    lines.append(record + ",,")
    return ("\\n".join(lines) + "\\n").encode()


class _LegacyBackend:
    def get_requires_for_build_wheel(self, config_settings=None):
        return []

    def prepare_metadata_for_build_wheel(self, metadata_directory, config_settings=None):
        kw = _setup_kwargs()
        dist_info = _dist_info(kw)
        os.makedirs(os.path.join(metadata_directory, dist_info))
        with open(os.path.join(metadata_directory, dist_info, "METADATA"), "wb") as fh:
            fh.write(_metadata(kw))
        return dist_info

    def build_wheel(self, wheel_directory, config_settings=None, metadata_directory=None):
        kw = _setup_kwargs()
        print("fake setuptools building", kw["name"], kw["version"])
        members = _members(kw)
        record = _dist_info(kw) + "/RECORD"
        members.append((record, _record(members, record)))
        filename = "%s-%s-py3-none-any.whl" % (_escape(kw["name"]), kw["version"])
        with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
            for arcname, data in members:
                zf.writestr(arcname, data)
        return filename


__legacy__ = _LegacyBackend()
'''


def fake_setuptools(version: str) -> DistSpec:
    """Return the spec of a fake ``setuptools`` wheel whose legacy backend builds offline."""
    return DistSpec(
        "setuptools",
        version,
        files={
            "setuptools/__init__.py": _SETUPTOOLS_INIT.format(version=version).encode(),
            "setuptools/build_meta.py": _BUILD_META.encode(),
        },
    )


def fake_generator(version: str) -> str:
    """Return the ``Generator`` a wheel built by :func:`fake_setuptools` of ``version`` has."""
    return f"fake-setuptools {version}"


FAILING_BACKEND = '''\
"""The in-tree test backend, broken: its metadata and wheel hooks raise."""

from burrow_test_backend import *  # noqa: F403


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    print("about to fail")
    raise RuntimeError("boom")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    print("about to fail")
    raise RuntimeError("boom")
'''

RECORDING_FILE = "built_with.txt"
"""Where :data:`RECORDING_BACKEND` writes the ``sys.prefix`` that ran ``build_wheel``."""

RECORDING_BACKEND = f'''\
"""The in-tree test backend, recording which environment ran build_wheel."""

import sys

import burrow_test_backend as _base
from burrow_test_backend import *  # noqa: F403


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open({RECORDING_FILE!r}, "w") as fh:
        fh.write(sys.prefix)
    return _base.build_wheel(wheel_directory, config_settings, metadata_directory)
'''
