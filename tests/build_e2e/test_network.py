"""A real sdist from the public index, built with setuptools through the legacy path.

``docopt 0.6.2`` has no wheel on PyPI, only an sdist with a bare ``setup.py`` and no
``pyproject.toml``: burrowd must build it with ``setuptools.build_meta:__legacy__`` in an
isolated environment it fills itself from the index (setuptools' wheel).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Final

import pytest

from tests.build_e2e.support import Counters, counters, direct_url, dist_info, python_says
from tests.install_e2e.support import Burrow, make_venv, site_packages

#: Two installs, the first with a build: a few seconds usually, up to a minute on a slow link.
pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]

PUBLIC_INDEX: Final = "https://pypi.org/simple"
PROBE: Final = "import docopt; print(docopt.__version__, docopt.__file__)"


def _check_installed(venv: Path) -> None:
    """Require docopt 0.6.2 installed by burrowd from the registry, importable and whole."""
    module = site_packages(venv) / "docopt.py"
    assert python_says(venv, PROBE) == f"0.6.2 {module}\n"
    info = dist_info(venv, "docopt")
    assert info.name == "docopt-0.6.2.dist-info"
    assert (info / "INSTALLER").read_text() == "burrowd\n"
    assert direct_url(venv, "docopt") is None  # from the registry: no direct reference
    # setuptools built the wheel (its Generator line; bdist_wheel before setuptools 70.1),
    # and RECORD lists what is there.
    wheel = (info / "WHEEL").read_text()
    assert re.search(r"^Generator: (setuptools|bdist_wheel) ", wheel, re.MULTILINE), wheel
    rows = list(csv.reader(io.StringIO((info / "RECORD").read_text())))
    listed = {row[0] for row in rows if row}
    assert "docopt.py" in listed
    for path in listed:
        assert (site_packages(venv) / path).exists(), path


def test_setup_py_sdist_from_pypi_is_built_once(burrow: Burrow, tmp_path: Path) -> None:
    before = counters(burrow)
    venv = make_venv(tmp_path / "venv")
    out = burrow.ok("install", "docopt==0.6.2", "-p", venv, "-i", PUBLIC_INDEX)
    assert out.splitlines()[-1] == " + docopt==0.6.2", out
    _check_installed(venv)
    built = counters(burrow)
    # Its metadata (prepare_metadata_for_build_wheel) and its wheel; no git involved.
    assert built == Counters(before.builds + 2, before.git_fetches)
    assert burrow.names(venv) == {"docopt": "0.6.2"}

    # Another environment takes the wheel built for the first one: nothing is built again.
    other = make_venv(tmp_path / "other")
    out = burrow.ok("install", "docopt==0.6.2", "-p", other, "-i", PUBLIC_INDEX)
    assert out.splitlines()[-1] == " + docopt==0.6.2", out
    _check_installed(other)
    assert counters(burrow) == built
