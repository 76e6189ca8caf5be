"""``burrow sync`` of a real pinned set from the public index, against pip's install of it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

import pytest

from tests.install_e2e.support import (
    Burrow,
    execute,
    make_venv,
    pip,
    record_rows,
    rows_without_installer,
    site_packages,
    tree,
    without_installer,
)

pytestmark = pytest.mark.network

PUBLIC_INDEX: Final = "https://pypi.org/simple"

#: A copy of the benchmark set ``a-trio.txt`` (``burrow compile`` output for ``trio``).
A_TRIO: Final = """\
attrs==26.1.0
    # via
    #   outcome
    #   trio
idna==3.20
    # via trio
outcome==1.3.0.post0
    # via trio
sniffio==1.3.1
    # via trio
sortedcontainers==2.4.0
    # via trio
trio==0.35.0
    # via -r a-trio.in
"""


def test_trio_set_as_pip_installs_it(burrow: Burrow, tmp_path: Path) -> None:
    reqs = tmp_path / "a-trio.txt"
    reqs.write_text(A_TRIO)
    venv = tmp_path / "env"
    site = site_packages(venv)

    make_venv(venv)
    pip(
        venv,
        "install",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--index-url",
        PUBLIC_INDEX,
        "-r",
        str(reqs),
    )
    by_pip = tree(venv)
    pip_rows = record_rows(site)
    # pip's install satisfies the pins: nothing to do.
    assert burrow.ok("sync", reqs, "-p", venv).startswith("Audited 6 packages in ")
    assert tree(venv) == by_pip
    shutil.rmtree(venv)

    make_venv(venv)
    out = burrow.ok("sync", reqs, "-p", venv)
    assert out.splitlines()[-6:] == [
        " + attrs==26.1.0",
        " + idna==3.20",
        " + outcome==1.3.0.post0",
        " + sniffio==1.3.1",
        " + sortedcontainers==2.4.0",
        " + trio==0.35.0",
    ]
    by_burrow = tree(venv)
    burrow_rows = record_rows(site)

    assert sorted(by_burrow) == sorted(by_pip)
    assert without_installer(by_burrow) == without_installer(by_pip)
    assert rows_without_installer(burrow_rows) == rows_without_installer(pip_rows)
    assert len(burrow_rows) == 6

    done = execute(venv / "bin" / "python", "-c", "import trio; print(trio.__version__)")
    assert (done.returncode, done.stdout) == (0, "0.35.0\n"), done.stderr
    assert burrow.names(venv)["trio"] == "0.35.0"
