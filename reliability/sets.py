"""The distributions the harness installs: an old and a new pin set, and a slow sdist.

The crash scenario syncs a venv from :data:`OLD` to :data:`NEW`: upgrades (some that move
files), removals, additions, one reinstall of the same version (:data:`REINSTALL`) and
packages that stay. Four projects carry 200 modules each, so that a kill lands while their
files are being removed or linked.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Final

from tests.daemon.builder.fakes import fake_setuptools
from tests.support.backend.burrow_test_backend import write_tar_gz
from tests.support.dists import DistSpec, sdist_filename, source_members
from tests.support.index import FakeIndex

__all__ = [
    "BIG_MODULES",
    "NEW",
    "OLD",
    "REINSTALL",
    "SLOW_BUILD",
    "Pins",
    "add_slow_sdist",
    "publish",
    "write_pins",
]

#: name -> version.
Pins = dict[str, str]

BIG_MODULES: Final = 200
#: Incompressible bytes in each big wheel: past the daemon's PROCESS_UNPACK_MIN, so that
#: the big wheels are unpacked by its worker processes, which the kills must not upset.
BIG_BLOB: Final = 96 * 1024
REINSTALL: Final = "rl-same"
SLOW_BUILD: Final = DistSpec("rl-slowbuild", "1.0")
#: Seconds each run of the slow sdist's ``setup.py`` sleeps.
SLOW_SECONDS: Final = 1.0

OLD: Final[Pins] = {
    "rl-big-up": "1.0",  # 200 modules -> 2.0 (some renamed)
    "rl-big-minor": "1.0",  # 200 modules -> 1.1
    "rl-big-gone": "1.0",  # 200 modules, removed
    REINSTALL: "1.0",  # 50 modules, reinstalled at the same version
    "rl-keep-a": "1.0",
    "rl-keep-b": "1.0",
    "rl-keep-c": "1.0",
    "rl-up-a": "1.0",
    "rl-up-b": "1.0",
    "rl-up-c": "1.0",
    "rl-down": "2.0",
    "rl-gone-a": "1.0",
    "rl-gone-b": "1.0",
    "rl-cli": "1.0",  # a console script
    "rl-ns-one": "1.0",  # a namespace package shared with rl-ns-two
    "rl-ns-two": "1.0",
}
NEW: Final[Pins] = {
    "rl-big-up": "2.0",
    "rl-big-minor": "1.1",
    "rl-big-new": "1.0",  # 200 modules, added
    REINSTALL: "1.0",
    "rl-keep-a": "1.0",
    "rl-keep-b": "1.0",
    "rl-keep-c": "1.0",
    "rl-up-a": "1.1",
    "rl-up-b": "2.0",
    "rl-up-c": "1.0.1",
    "rl-down": "1.5",
    "rl-new-a": "1.0",
    "rl-new-b": "1.0",
    "rl-cli": "2.0",
    "rl-ns-one": "1.1",
    "rl-ns-two": "1.0",
}


def _modules(name: str, version: str, count: int, *, stem: str = "m") -> dict[str, bytes]:
    pkg = name.replace("-", "_")
    files = {f"{pkg}/__init__.py": f"__version__ = {version!r}\n".encode()}
    for i in range(count):
        files[f"{pkg}/{stem}{i:03d}.py"] = f"# {name} {version} module {i}\nX = {i}\n".encode()
    return files


def _with_blob(files: dict[str, bytes], name: str, version: str) -> dict[str, bytes]:
    pkg = name.replace("-", "_")
    files[f"{pkg}/blob.bin"] = random.Random(f"{name} {version}").randbytes(BIG_BLOB)
    return files


def spec(name: str, version: str) -> DistSpec:
    """Return what ``name`` at ``version`` holds."""
    if name == "rl-big-up":
        # 2.0 renames half of its modules: the upgrade both removes and adds files.
        stem = "k" if version == "1.0" else "n"
        files = _modules(name, version, BIG_MODULES // 2)
        files.update(_modules(name, version, BIG_MODULES // 2, stem=stem))
        return DistSpec(name, version, files=_with_blob(files, name, version))
    if name.startswith("rl-big-"):
        files = _modules(name, version, BIG_MODULES)
        return DistSpec(name, version, files=_with_blob(files, name, version))
    if name == REINSTALL:
        return DistSpec(name, version, files=_modules(name, version, 50))
    if name == "rl-cli":
        files = {"rl_cli/__init__.py": b"def main():\n    print('rl-cli')\n"}
        return DistSpec(
            name,
            version,
            files=files,
            entry_points={"console_scripts": {"rl-cli": "rl_cli:main"}},
        )
    if name.startswith("rl-ns-"):
        part = name.rsplit("-", 1)[1]
        files = {f"rl_ns/{part}/__init__.py": f"V = {version!r}\n".encode()}
        return DistSpec(name, version, files=files)
    return DistSpec(name, version, files=_modules(name, version, 3))


def publish(index: FakeIndex, *sets: Pins) -> None:
    """Put every distribution of ``sets`` on ``index`` (as wheels)."""
    seen: set[tuple[str, str]] = set()
    for pins in sets:
        for name, version in pins.items():
            if (name, version) not in seen:
                seen.add((name, version))
                index.add(spec(name, version))


def write_pins(path: Path, pins: Pins) -> Path:
    """Write ``pins`` as a requirements file and return its path."""
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())), encoding="utf-8")
    return path


def add_slow_sdist(index: FakeIndex, dest: Path) -> None:
    """Serve :data:`SLOW_BUILD` as a ``setup.py`` sdist that sleeps, and a setuptools to build it.

    The setuptools is the builder tests' fake one (its legacy backend runs ``setup.py``
    and writes the wheel with the standard library), so the isolated build works offline.
    """
    index.add(fake_setuptools("99.0"))
    filename = sdist_filename(SLOW_BUILD)
    stem = filename.removesuffix(".tar.gz")
    members = []
    sleep = f"import time\ntime.sleep({SLOW_SECONDS})\n".encode()
    for rel, blob in source_members(SLOW_BUILD, backend="setup.py"):
        members.append((f"{stem}/{rel}", sleep + blob if rel == "setup.py" else blob))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / filename
    write_tar_gz(path, members)
    index.add(path)
