"""The client stays light: it loads neither aiohttp nor the daemon, and imports flow one way.

``client -> protocol <- daemon``: the client imports the protocol and never the daemon at
module level (``--no-daemon`` loads it lazily), and the daemon never imports the client.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from tests.protocol.importgraph import imports_of, package_files

#: Never loaded by ``import burrowd.client.cli``: the daemon and its third-party stack.
HEAVY = ("aiohttp", "burrowd.daemon", "packaging", "watchfiles", "platformdirs", "filelock")

PROBE = """\
import json, sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
print(json.dumps({{"modules": sorted(sys.modules), "elapsed": elapsed}}))
"""


def _heavy(module: str) -> bool:
    return any(module == h or module.startswith(h + ".") for h in HEAVY)


class TestClientImports:
    @pytest.mark.parametrize(
        "module",
        [
            "burrowd.client.cli",
            "burrowd.client.connection",
            "burrowd.client.render",
            "burrowd.client.launch",
        ],
    )
    def test_import_loads_nothing_heavy(self, module: str) -> None:
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        report = json.loads(out)
        assert module in report["modules"]
        assert [m for m in report["modules"] if _heavy(m)] == []

    def test_a_command_skips_the_stdlib_modules_it_does_not_need(self) -> None:
        # socket.py (and selectors) for a Unix socket, shutil (with zlib, bz2 and lzma) for
        # argparse's terminal width, locale for gettext's lookups of argparse's messages:
        # about 6 ms of every command, for nothing.
        probe = (
            "import json, sys\n"
            "import burrowd.client.cli as cli\n"
            "cli.build_parser(['daemon', 'status']).parse_args(['daemon', 'status'])\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        modules = set(json.loads(out))
        assert "burrowd.client.connection" in modules
        assert modules.isdisjoint({"socket", "selectors", "shutil", "bz2", "lzma", "locale"})

    def test_the_entry_point_loads_only_what_starting_the_daemon_needs(self) -> None:
        # It starts the daemon before anything else loads: msgspec, typing and re (about
        # 20 ms) come after. (No json in the probe: it imports re.)
        def loaded(code: str) -> set[str]:
            out = subprocess.run(
                [sys.executable, "-c", f"import sys\n{code}\nprint(repr(sorted(sys.modules)))"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return set(ast.literal_eval(out))

        added = loaded("import burrowd.client.launch") - loaded("pass")
        assert "burrowd.protocol.paths" in added
        assert added.isdisjoint({"msgspec", "typing", "re", "argparse", "contextlib"}), added

    def test_no_module_level_import_of_the_daemon(self) -> None:
        found = [
            imp for path, package in package_files("client") for imp in imports_of(path, package)
        ]
        assert any(imp.module.startswith("burrowd.protocol") for imp in found)
        at_import_time = [
            imp for imp in found if imp.module_level and imp.module.startswith("burrowd.daemon")
        ]
        assert at_import_time == []
        third_party = [
            imp for imp in found if imp.module_level and _heavy(imp.module.split(".")[0])
        ]
        assert third_party == []

    def test_daemon_never_imports_the_client(self) -> None:
        found = [
            imp
            for path, package in package_files("daemon")
            for imp in imports_of(path, package)
            if imp.module == "burrowd.client" or imp.module.startswith("burrowd.client.")
        ]
        assert found == []
