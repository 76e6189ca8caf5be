"""``burrowd.protocol`` is a leaf: the standard library and msgspec, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from burrowd.protocol.build import package_roots
from tests.protocol.importgraph import imports_of, package_files

PROTOCOL = package_roots()[0]

#: Import every protocol module in a fresh interpreter; print what that added to sys.modules.
#: msgspec is loaded and exercised first: what it loads for itself (it tries the optional
#: typing_extensions) is msgspec's business, not an import of ours.
PROBE = """\
import json, pkgutil, sys
import msgspec
class S(msgspec.Struct, frozen=True, kw_only=True):
    a: int | None = None
msgspec.json.decode(msgspec.json.encode(S(a=1)), type=S)
before = set(sys.modules)
import burrowd.protocol
names = [m.name for m in pkgutil.iter_modules(burrowd.protocol.__path__, "burrowd.protocol.")]
for name in names:
    __import__(name)
print(json.dumps({"modules": sorted(set(sys.modules) - before), "imported": names}))
"""


def _allowed(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return (
        top in sys.stdlib_module_names
        or top == "msgspec"
        or module in {"burrowd", "burrowd.protocol"}
        or module.startswith("burrowd.protocol.")
    )


class TestProtocolImports:
    def test_loads_only_stdlib_and_msgspec(self) -> None:
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        ).stdout
        report = json.loads(out)
        assert {"burrowd.protocol.messages", "burrowd.protocol.jsonrpc"} <= set(report["imported"])
        assert "burrowd.protocol.paths" in report["modules"]
        foreign = [name for name in report["modules"] if not _allowed(name)]
        assert foreign == []

    def test_source_imports_nothing_but_stdlib_msgspec_and_protocol(self) -> None:
        found = [
            imp for path, package in package_files("protocol") for imp in imports_of(path, package)
        ]
        assert any(imp.module == "msgspec" for imp in found)
        foreign = [imp for imp in found if not _allowed(imp.module)]
        assert foreign == []

    def test_relative_imports_are_resolved(self, tmp_path: Path) -> None:
        source = tmp_path / "mod.py"
        source.write_text(
            "from . import jsonrpc\nfrom .errors import RpcError\nfrom .. import daemon\n"
            "from ..daemon.app import Daemon\ndef f():\n    import aiohttp\n"
        )
        found = [(i.module, i.module_level) for i in imports_of(source, "burrowd.protocol")]
        assert found == [
            ("burrowd.protocol.jsonrpc", True),
            ("burrowd.protocol.errors", True),
            ("burrowd.daemon", True),
            ("burrowd.daemon.app", True),
            ("aiohttp", False),
        ]

    def test_protocol_dir_is_the_package(self) -> None:
        assert Path(PROTOCOL, "__init__.py").is_file()
