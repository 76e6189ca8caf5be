"""The build id: a digest of the package files' paths, sizes and modification times."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from burrowd.protocol import build


def _digest(root: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    build._walk(str(root), digest)
    return digest.hexdigest()


class TestBuildId:
    def test_shape_and_stability(self) -> None:
        build.build_id.cache_clear()
        first = build.build_id()
        assert len(first) == 16
        int(first, 16)
        build.build_id.cache_clear()
        assert build.build_id() == first

    def test_same_code_same_id_in_another_process(self) -> None:
        build.build_id.cache_clear()
        ours = build.build_id()
        theirs = subprocess.run(
            [
                sys.executable,
                "-c",
                "from burrowd.protocol.build import build_id; print(build_id())",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert theirs == ours

    def test_package_roots(self) -> None:
        roots = [Path(r) for r in build.package_roots()]
        assert [r.name for r in roots] == ["protocol", "client", "daemon"]
        for root in roots:
            assert (root / "__init__.py").is_file()
        assert Path(build.__file__).resolve().parent == roots[0]


class TestWalk:
    def test_what_changes_the_digest(self, tmp_path: Path) -> None:
        (tmp_path / "pkg").mkdir()
        module = tmp_path / "pkg" / "mod.py"
        module.write_text("x = 1\n")
        before = _digest(tmp_path)
        assert _digest(tmp_path) == before

        # Not code: ignored.
        (tmp_path / "pkg" / "data.txt").write_text("hello")
        cache = tmp_path / "pkg" / "__pycache__"
        cache.mkdir()
        (cache / "mod.cpython-311.py").write_text("")
        assert _digest(tmp_path) == before

        # An edit of the same size still moves the mtime.
        st = module.stat()
        module.write_text("x = 2\n")
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        edited = _digest(tmp_path)
        assert edited != before

        (tmp_path / "pkg" / "new.py").write_text("")
        assert _digest(tmp_path) != edited

    def test_missing_root_is_empty(self, tmp_path: Path) -> None:
        assert _digest(tmp_path / "missing") == hashlib.blake2b(digest_size=8).hexdigest()
