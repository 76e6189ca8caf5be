"""burrowd installs wheels as pip does: the same files, bytes, modes and RECORD rows.

Each comparison installs the same wheels with pip (the test runner's, through
``pip --python``) and with ``burrow sync`` into a venv created afresh at the same path, so
script shebangs name the same interpreter. The only expected difference is ``INSTALLER``
(``pip`` against ``burrowd``) and its RECORD row; burrowd also leaves the environment's
``.lock`` (the file uv locks too). Uninstalls are checked across tools in both directions.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from tests.install_e2e.support import (
    PYTHON_DIR,
    Burrow,
    execute,
    make_venv,
    pip,
    record_rows,
    requirements,
    rows_without_installer,
    site_packages,
    tree,
    without_installer,
)
from tests.support.dists import DistSpec, build_wheel
from tests.support.index import FakeIndex

_ALPHA_INIT = b"def main():\n    print('alpha main')\n"

#: Wheels that exercise the install rules: entry points (console and GUI), every ``.data``
#: scheme, a ``#!python`` script and one that must be left as it is, a namespace package
#: shared by two distributions, pip's and setuptools' versioned launchers, a name that
#: normalizes, file names RECORD must quote, a directory inside ``.dist-info``.
SPECS = [
    DistSpec(
        "alpha",
        "1.0",
        files={
            "alpha/__init__.py": _ALPHA_INIT,
            "alpha/sub/__init__.py": b"",
            "alpha/sub/mod.py": b"X = 1\n",
            "alpha/data/table.json": b'{"a": 1}\n',
        },
        entry_points={
            "console_scripts": {"alpha-cli": "alpha:main"},
            "gui_scripts": {"alpha-gui": "alpha:main"},
        },
        data={
            "scripts/alpha-tool": b"#!python\nprint('alpha tool')\n",
            "scripts/alpha-sh": b"#!/bin/sh\necho alpha sh\n",
            "data/share/alpha/readme.txt": b"read me\n",
            "headers/alpha.h": b"int alpha;\n",
            "purelib/alpha_extra.py": b"EXTRA = True\n",
        },
    ),
    DistSpec("ns-one", "1.0", files={"nspkg/one/__init__.py": b"ONE = 1\n"}),
    DistSpec("ns-two", "1.0", files={"nspkg/two/__init__.py": b"TWO = 2\n"}),
    DistSpec(
        "pip",
        "99.0",
        files={"pip/__init__.py": b"def main():\n    print('fake pip')\n"},
        entry_points={
            "console_scripts": {"pip": "pip:main", "pip3": "pip:main", "pip3.8": "pip:main"}
        },
    ),
    DistSpec(
        "setuptools",
        "99.0",
        entry_points={
            "console_scripts": {
                "easy_install": "setuptools:main",
                "easy_install-3.8": "setuptools:main",
            }
        },
    ),
    DistSpec("Zeta.Pkg", "1.0.post1", files={"zeta/__init__.py": b"Z = 26\n"}),
    DistSpec(
        "odd",
        "1.0",
        files={
            "odd/__init__.py": b"",
            "odd/a,b.txt": b"comma\n",
            'odd/say "hi".txt': b"quote\n",
            "odd/\u00fcber caf\u00e9.txt": b"unicode\n",
            # Metadata 2.4 license files: a subdirectory of .dist-info.
            "odd-1.0.dist-info/licenses/LICENSE.txt": b"MIT\n",
        },
    ),
]
#: A wheel member with the executable bit set (pip keeps it; so must burrowd).
EXECUTABLE = "xbit/run.sh"
NAMES = [spec.name for spec in SPECS] + ["xbit"]
PINS = [f"{spec.name}=={spec.version}" for spec in SPECS] + ["xbit==1.0"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Return the wheels of :data:`SPECS` and of ``xbit``, built once for the module."""
    dest = tmp_path_factory.mktemp("fidelity-wheels")
    built = [build_wheel(spec, dest) for spec in SPECS]
    xbit = DistSpec(
        "xbit", "1.0", files={"xbit/__init__.py": b"", EXECUTABLE: b"#!/bin/sh\necho run\n"}
    )
    built.append(_with_mode(build_wheel(xbit, dest), EXECUTABLE, 0o755))
    return built


def _with_mode(wheel: Path, member: str, mode: int) -> Path:
    """Rewrite ``wheel`` with ``member``'s Unix mode set to ``mode`` (content unchanged)."""
    rewritten = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                info.external_attr = (stat.S_IFREG | mode) << 16
            dst.writestr(info, data)
    rewritten.replace(wheel)
    return wheel


@pytest.fixture(scope="module")
def pip_leftovers(tmp_path_factory: pytest.TempPathFactory, wheels: list[Path]) -> set[str]:
    """Return what pip leaves of its own install of :data:`SPECS` after uninstalling it."""
    venv = make_venv(tmp_path_factory.mktemp("pip-round-trip") / "env")
    baseline = tree(venv)
    pip(venv, "install", "--no-deps", "--no-index", "--no-compile", *map(str, wheels))
    pip(venv, "uninstall", "-y", *NAMES)
    return set(tree(venv)) - set(baseline)


def _installers(site: Path) -> dict[str, str]:
    return {d.name: (d / "INSTALLER").read_text() for d in sorted(site.glob("*.dist-info"))}


@pytest.mark.parametrize("source", ["index", "files"])
def test_installs_what_pip_installs(
    burrow: Burrow, fake_index: FakeIndex, wheels: list[Path], tmp_path: Path, source: str
) -> None:
    venv = tmp_path / "env"
    site = site_packages(venv)
    if source == "index":
        fake_index.add_many(wheels)
        pip_args = ["--index-url", fake_index.simple_url, *PINS]
        reqs = requirements(tmp_path / "pins.txt", *PINS)
        sync_args = ["-i", fake_index.simple_url]
    else:
        pip_args = ["--no-index", *map(str, wheels)]
        reqs = requirements(tmp_path / "wheels.txt", *wheels)
        sync_args = []

    make_venv(venv)
    pip(venv, "install", "--no-deps", "--no-compile", "--no-cache-dir", *pip_args)
    by_pip = tree(venv)
    pip_rows = record_rows(site)
    # What pip installed satisfies the same pins: a sync leaves it as it is.
    out = burrow.ok("sync", reqs, "-p", venv, *sync_args)
    assert re.fullmatch(rf"Audited {len(NAMES)} packages in \S+\n", out), out
    assert tree(venv) == by_pip
    shutil.rmtree(venv)

    make_venv(venv)
    burrow.ok("sync", reqs, "-p", venv, *sync_args)
    by_burrow = tree(venv)
    burrow_rows = record_rows(site)

    assert sorted(by_burrow) == sorted(by_pip)
    assert without_installer(by_burrow) == without_installer(by_pip)
    assert rows_without_installer(burrow_rows) == rows_without_installer(pip_rows)
    dist_infos = sorted(pip_rows)
    assert len(dist_infos) == len(NAMES)
    executable = by_burrow[f"lib/{PYTHON_DIR}/site-packages/{EXECUTABLE}"]
    assert executable[1] & 0o111 == 0o111, oct(executable[1])
    assert _installers(site) == dict.fromkeys(dist_infos, "burrowd\n")
    for dist in dist_infos:
        # pip marks what was asked for on its command line; sync asks for every pin.
        assert f"{dist}/REQUESTED" in {row[0] for row in burrow_rows[dist]}
        assert (f"{dist}/INSTALLER", "", "") not in burrow_rows[dist]
        direct_url = f"{dist}/direct_url.json"
        assert (site.joinpath(direct_url).is_file()) == (source == "files")
    # The versioned launchers are the target's, as pip names them.
    major_minor = PYTHON_DIR.removeprefix("python")
    assert {f"bin/pip{major_minor}", f"bin/easy_install-{major_minor}"} <= set(by_burrow)
    assert "bin/pip3.8" not in by_burrow


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("with space/env", id="space"),
        # Longer than a #! line may be (127 bytes): launchers start through /bin/sh.
        pytest.param("x" * 100 + "/env", id="long"),
    ],
)
def test_what_burrowd_installed_runs(
    burrow: Burrow, wheels: list[Path], tmp_path: Path, where: str
) -> None:
    # Launchers and rewritten #!python scripts must start whatever the interpreter's path.
    venv = make_venv(tmp_path / where)
    assert len(str(venv / "bin" / "python")) > 127 or " " in str(venv)
    burrow.ok("sync", requirements(tmp_path / "wheels.txt", *wheels), "-p", venv)
    bin_dir = venv / "bin"
    cases: list[tuple[list[str | Path], str]] = [
        ([bin_dir / "alpha-cli"], "alpha main\n"),
        ([bin_dir / "alpha-gui"], "alpha main\n"),
        ([bin_dir / "alpha-tool"], "alpha tool\n"),
        ([bin_dir / "alpha-sh"], "alpha sh\n"),
        ([bin_dir / "pip"], "fake pip\n"),
        ([venv / "lib" / PYTHON_DIR / "site-packages" / EXECUTABLE], "run\n"),
        (
            [
                bin_dir / "python",
                "-c",
                "import alpha.sub.mod, alpha_extra, nspkg.one, nspkg.two, zeta; "
                "print(alpha.sub.mod.X, alpha_extra.EXTRA, nspkg.one.ONE, nspkg.two.TWO, zeta.Z)",
            ],
            "1 True 1 2 26\n",
        ),
    ]
    for argv, out in cases:
        done = execute(*argv, cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (0, out, ""), argv
    assert (venv / "share" / "alpha" / "readme.txt").read_text() == "read me\n"
    assert (venv / "include" / "site" / PYTHON_DIR / "alpha" / "alpha.h").is_file()


def test_pip_uninstalls_what_burrowd_installed(
    burrow: Burrow, wheels: list[Path], pip_leftovers: set[str], tmp_path: Path
) -> None:
    venv = make_venv(tmp_path / "env")
    baseline = tree(venv)
    burrow.ok("sync", requirements(tmp_path / "wheels.txt", *wheels), "-p", venv)
    pip(venv, "uninstall", "-y", *NAMES)
    after = tree(venv)
    # Exactly what pip leaves of its own installs: empty directories, no file, no script.
    assert set(after) - set(baseline) == pip_leftovers
    assert all(after[path][0] == "dir" for path in pip_leftovers)
    assert {p: e for p, e in after.items() if p in baseline} == baseline


def test_burrowd_uninstalls_what_pip_installed(
    burrow: Burrow, wheels: list[Path], pip_leftovers: set[str], tmp_path: Path
) -> None:
    venv = make_venv(tmp_path / "env")
    baseline = tree(venv)
    pip(venv, "install", "--no-deps", "--no-index", "--no-compile", *map(str, wheels))
    assert {e[2] for p, e in tree(venv).items() if p.endswith("/INSTALLER")} == {b"pip\n"}
    out = burrow.ok("uninstall", *NAMES, "-p", venv)
    assert out.splitlines()[0].startswith(f"Uninstalled {len(NAMES)} packages in ")
    after = tree(venv)
    left = set(after) - set(baseline)
    # No file or script is left, and no directory that pip's own uninstall would remove.
    assert all(after[path][0] == "dir" for path in left), left
    assert left <= pip_leftovers
    assert {p: e for p, e in after.items() if p in baseline} == baseline
    site = f"lib/{PYTHON_DIR}/site-packages/"
    assert sorted(p for p in after if p.startswith(site)) == [site]
