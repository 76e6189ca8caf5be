"""The ``resolve`` method: inputs, the output file, hashes, the result and the warm path.

The service runs in this process on a fresh cache against a fake index; what it reads are
real files in a temporary project directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burrowd.daemon.resolver.service import _index_lines
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode
from tests.resolve_e2e.harness import Compiler, open_compiler, pins, pins_of_text, release
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory


@pytest.fixture
async def compiler(tmp_path: Path, fake_index: FakeIndex) -> AsyncIterator[Compiler]:
    async with open_compiler(tmp_path, fake_index) as c:
        yield c


@pytest.fixture
def web(fake_index: FakeIndex) -> FakeIndex:
    """Publish ``web`` (with an ``async`` extra) and its dependencies, in two versions each."""
    release(fake_index, "web==1.0", "core", 'aio ; extra == "async"')
    for name in ("core", "aio", "lib"):
        release(fake_index, f"{name}==1.0")
        release(fake_index, f"{name}==2.0")
    return fake_index


def vias(result_text: str, name: str) -> list[str]:
    """Return the ``# via`` entries of ``name`` in pip-compile text."""
    lines = result_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split("==")[0] == name)
    out: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("    #"):
            break
        entry = line.strip().removeprefix("#").strip()
        if entry == "via":
            continue
        out.append(entry.removeprefix("via "))
    return out


class TestRequirementsFiles:
    @pytest.mark.usefixtures("web")
    async def test_includes_constraints_index_options_comments_and_continuations(
        self, compiler: Compiler
    ) -> None:
        compiler.write(
            "requirements.in",
            "# what the service needs\n"
            "--index-url ${FAKE_INDEX}\n"
            "-r base/common.in\n"
            "-c constraints.txt\n"
            "web[async] >= 1.0 \\\n"
            "    ; python_version >= '3.8'   # the web layer\n"
            "\n"
            "lib ; python_version < '3.8'\n",
        )
        compiler.write("base/common.in", "core  # shared\n-r more.in\n")
        compiler.write("base/more.in", "lib>=1\n")
        compiler.write("constraints.txt", "lib<2\nunlisted==1.0\n")
        result = await compiler.compile(
            files=["requirements.in"],
            index_url=None,
            variables={"FAKE_INDEX": compiler.index.simple_url},
        )
        assert pins(result) == {"aio": "2.0", "core": "2.0", "lib": "1.0", "web": "1.0"}
        text = result.output
        assert vias(text, "web") == ["-r requirements.in (line 5)"]
        assert vias(text, "core") == ["-r base/common.in (line 1)", "web"]
        assert vias(text, "lib") == ["-c constraints.txt (line 1)", "-r base/more.in (line 1)"]
        assert vias(text, "aio") == ["web"]
        assert 'web==1.0 ; python_version >= "3.8"\n' in text
        (web,) = (p for p in result.packages if p.name == "web")
        assert web.extras == ["async"]
        assert web.direct

    @pytest.mark.usefixtures("web")
    async def test_requirements_on_the_command_line_and_in_files(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "web\n")
        result = await compiler.compile("lib<2", "core==1.0", files=["requirements.in"])
        assert pins(result) == {"web": "1.0", "core": "1.0", "lib": "1.0"}
        assert vias(result.output, "lib") == ["command line"]
        assert vias(result.output, "core") == ["command line", "web"]

    @pytest.mark.parametrize(
        ("text", "line", "problem"),
        [
            pytest.param("web\nlib>=>1\n", 2, "invalid requirement", id="bad-specifier"),
            pytest.param("web\n\n--frobnicate\n", 3, "--frobnicate", id="unknown-option"),
            pytest.param("web \\\n  --hash=sha256:abc\n", 1, "hash", id="bad-hash"),
        ],
    )
    async def test_a_bad_line_names_the_file_line_and_problem(
        self, compiler: Compiler, text: str, line: int, problem: str
    ) -> None:
        path = compiler.write("requirements.in", text)
        error = await compiler.fail(files=["requirements.in"])
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert error.message.startswith(f"{path}:{line}: ")
        assert problem in error.message
        assert error.data["file"] == str(path)
        assert error.data["line"] == line

    async def test_a_missing_file(self, compiler: Compiler) -> None:
        error = await compiler.fail(files=["missing.in"])
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert "missing.in" in error.message
        assert "No such file" in error.message

    @pytest.mark.parametrize(
        ("requirements", "options", "message"),
        [
            pytest.param([], {}, "nothing to resolve", id="nothing"),
            pytest.param(["web"], {"extras": ["x"]}, "need a pyproject.toml", id="extra"),
            pytest.param(["web"], {"groups": ["dev"]}, "need a pyproject.toml", id="group"),
            pytest.param([], {"files": ["setup.py"]}, "needs a build", id="setup-py"),
        ],
    )
    async def test_inputs_that_cannot_be_used(
        self,
        compiler: Compiler,
        requirements: list[str],
        options: dict[str, list[str]],
        message: str,
    ) -> None:
        compiler.write("setup.py", "from setuptools import setup\nsetup()\n")
        error = await compiler.fail(*requirements, **options)
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert message in error.message


PYPROJECT = """\
[project]
name = "me"
version = "0.1"
dependencies = [
    "core>=1",
]

[project.optional-dependencies]
web = ["web[async]"]
extra-lib = ["lib<2"]

[dependency-groups]
test = ["aio", {include-group = "lint"}]
lint = ["lib"]
"""


@pytest.mark.usefixtures("web")
class TestPyproject:
    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            pytest.param({}, {"core": "2.0"}, id="dependencies"),
            pytest.param(
                {"extras": ["web"]},
                {"core": "2.0", "web": "1.0", "aio": "2.0"},
                id="extra",
            ),
            pytest.param(
                {"all_extras": True},
                {"core": "2.0", "web": "1.0", "aio": "2.0", "lib": "1.0"},
                id="all-extras",
            ),
            pytest.param(
                {"groups": ["test"]},
                {"core": "2.0", "aio": "2.0", "lib": "2.0"},
                id="group-with-include",
            ),
            pytest.param({"groups": ["lint"]}, {"core": "2.0", "lib": "2.0"}, id="group"),
        ],
    )
    async def test_what_is_selected(
        self, compiler: Compiler, options: dict[str, object], expected: dict[str, str]
    ) -> None:
        compiler.write("pyproject.toml", PYPROJECT)
        assert await compiler.pins(files=["pyproject.toml"], **options) == expected

    async def test_via_names_the_project_and_the_file_as_given(self, compiler: Compiler) -> None:
        # pip-compile's and uv's form; the line stays in the structured result.
        compiler.write("pyproject.toml", PYPROJECT)
        result = await compiler.compile(files=["pyproject.toml"], extras=["extra-lib"])
        assert vias(result.output, "core") == ["me (pyproject.toml)"]
        assert vias(result.output, "lib") == ["me (pyproject.toml)"]
        assert str(compiler.cwd) not in result.output
        by_name = {p.name: p for p in result.packages}
        assert [(v.kind, v.line) for v in by_name["core"].via] == [("project", 5)]
        assert [(v.kind, v.line) for v in by_name["lib"].via] == [("project", 10)]

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            pytest.param({"extras": ["nope"]}, "unknown extra 'nope'", id="extra"),
            pytest.param({"groups": ["nope"]}, "nope", id="group"),
        ],
    )
    async def test_an_unknown_name(
        self, compiler: Compiler, options: dict[str, list[str]], message: str
    ) -> None:
        path = compiler.write("pyproject.toml", PYPROJECT)
        error = await compiler.fail(files=["pyproject.toml"], **options)
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert message in error.message
        assert error.data["file"] == str(path)


@pytest.mark.usefixtures("web")
class TestOutputFile:
    async def test_written_atomically(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "web\n")
        before = set(os.listdir(compiler.cwd))
        result = await compiler.compile(files=["requirements.in"], output_file="requirements.txt")
        target = compiler.cwd / "requirements.txt"
        assert result.wrote
        assert result.output_file == str(target)
        assert target.read_text() == result.output
        assert set(os.listdir(compiler.cwd)) == before | {"requirements.txt"}

        # A second run replaces it in place, again leaving nothing else behind.
        compiler.write("requirements.in", "web\nlib\n")
        result = await compiler.compile(files=["requirements.in"], output_file="requirements.txt")
        assert target.read_text() == result.output
        assert "lib==2.0" in target.read_text()
        assert set(os.listdir(compiler.cwd)) == before | {"requirements.txt"}

    async def test_concurrent_writes_of_one_file(self, compiler: Compiler) -> None:
        requirements = ["core", "lib", "aio", "web"]
        results = await asyncio.gather(
            *(compiler.compile(r, output_file="requirements.txt") for r in requirements)
        )
        assert all(r.wrote for r in results)
        assert (compiler.cwd / "requirements.txt").read_text() in {r.output for r in results}
        assert os.listdir(compiler.cwd) == ["requirements.txt"]

    async def test_into_a_new_directory(self, compiler: Compiler) -> None:
        result = await compiler.compile("core", output_file="locks/py312.txt")
        assert (compiler.cwd / "locks" / "py312.txt").read_text() == result.output

    async def test_dry_run_writes_nothing(self, compiler: Compiler) -> None:
        result = await compiler.compile("core", output_file="requirements.txt", dry_run=True)
        assert not result.wrote
        assert not (compiler.cwd / "requirements.txt").exists()
        assert result.output.endswith("core==2.0\n    # via command line\n")

    async def test_an_unwritable_path_is_a_clear_error(self, compiler: Compiler) -> None:
        compiler.write("locks", "a file, not a directory\n")
        error = await compiler.fail("core", output_file="locks/requirements.txt")
        assert error.code == ErrorCode.INVALID_PARAMS
        assert error.message.startswith(
            f"cannot write the output file {compiler.cwd / 'locks' / 'requirements.txt'}: "
        )
        assert sorted(os.listdir(compiler.cwd)) == ["locks"]

    async def test_pins_of_the_existing_file_are_kept(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "web[async]\nlib\n")
        compiler.write("requirements.txt", "aio==1.0\ncore==1.0\nlib==1.0\nweb==1.0\n")
        kept = {"aio": "1.0", "core": "1.0", "lib": "1.0", "web": "1.0"}
        common = {"files": ["requirements.in"], "output_file": "requirements.txt"}
        assert await compiler.pins(dry_run=True, **common) == kept
        assert await compiler.pins(dry_run=True, upgrade_packages=["lib", "AIO"], **common) == {
            **kept,
            "lib": "2.0",
            "aio": "2.0",
        }
        assert await compiler.pins(**common) == kept
        assert await compiler.pins(upgrade=True, **common) == {
            "aio": "2.0",
            "core": "2.0",
            "lib": "2.0",
            "web": "1.0",
        }

    async def test_a_pin_the_requirements_no_longer_allow_is_dropped(
        self, compiler: Compiler
    ) -> None:
        compiler.write("requirements.txt", "core==1.0\nlib==1.0\n")
        assert await compiler.pins(
            "core", "lib>1", output_file="requirements.txt", dry_run=True
        ) == {"core": "1.0", "lib": "2.0"}

    async def test_a_broken_existing_file_keeps_its_readable_pins(self, compiler: Compiler) -> None:
        compiler.write(
            "requirements.txt",
            "core==1.0 \\\n    --hash=sha256:00\n    # via -r requirements.in\n"
            "this is ==== not a requirement\n-e file:///nonexistent/dir\n",
        )
        result = await compiler.compile("core", output_file="requirements.txt", dry_run=True)
        assert pins(result) == {"core": "1.0"}
        [warning] = result.warnings
        assert "requirements.txt does not parse" in warning
        assert "kept the 1 pin(s)" in warning
        assert "--upgrade" in warning


class TestHashes:
    async def test_every_file_of_the_pinned_version(self, compiler: Compiler) -> None:
        index = compiler.index
        for tag in (
            "py3-none-any",
            "cp312-cp312-manylinux_2_17_x86_64",
            "cp312-cp312-win_amd64",
            "cp311-cp311-macosx_11_0_arm64",
        ):
            index.add(DistSpec("native", "1.0", tag=tag))
        index.add(DistSpec("native", "1.0"), wheel=False, sdist=True)
        index.add(DistSpec("native", "0.9"), sdist=True)
        wanted = sorted(f"sha256:{f.sha256}" for f in index.files("native") if f.version == "1.0")
        assert len(wanted) == 5

        result = await compiler.compile("native", generate_hashes=True)
        assert sorted(result.packages[0].hashes) == wanted
        lines = result.output.splitlines()
        start = lines.index("native==1.0 \\")
        hash_lines = lines[start + 1 : start + 6]
        assert hash_lines == [
            *(f"    --hash={h} \\" for h in wanted[:-1]),
            f"    --hash={wanted[-1]}",
        ]
        assert lines[start + 6] == "    # via command line"

    @pytest.mark.parametrize("json_api", [True, False], ids=["json", "html"])
    async def test_files_the_index_gives_no_hash_for_are_hashed(
        self, compiler: Compiler, json_api: bool
    ) -> None:
        index = compiler.index
        index.file_hashes = False
        index.json_api = json_api
        index.add(DistSpec("bare", "1.0"), sdist=True)
        wanted = sorted(f"sha256:{f.sha256}" for f in index.files("bare"))
        assert len(wanted) == 2

        result = await compiler.compile("bare", generate_hashes=True)
        assert sorted(result.packages[0].hashes) == wanted
        for digest in wanted:
            assert f"--hash={digest}" in result.output
        downloads = sum(index.hits[f"/files/{f.filename}"] for f in index.files("bare"))
        assert downloads >= 2  # each file was fetched to be hashed
        # Again: remembered, not downloaded twice.
        again = await compiler.compile("bare", generate_hashes=True)
        assert sorted(again.packages[0].hashes) == wanted
        assert sum(index.hits[f"/files/{f.filename}"] for f in index.files("bare")) == downloads

    async def test_a_cached_wheel_is_not_downloaded_again_to_be_hashed(
        self, compiler: Compiler
    ) -> None:
        index = compiler.index
        index.file_hashes = False
        index.range_requests = False  # metadata then comes from the whole (cached) wheel
        index.add(DistSpec("bare", "1.0"), sdist=True, metadata_file=False)
        (wheel,) = (f for f in index.files("bare") if f.filename.endswith(".whl"))
        assert pins(await compiler.compile("bare")) == {"bare": "1.0"}
        fetched = index.hits[f"/files/{wheel.filename}"]
        assert fetched >= 1
        result = await compiler.compile("bare", generate_hashes=True)
        assert f"sha256:{wheel.sha256}" in result.packages[0].hashes
        assert index.hits[f"/files/{wheel.filename}"] == fetched

    async def test_offline_hashing_names_what_is_missing(self, compiler: Compiler) -> None:
        index = compiler.index
        index.file_hashes = False
        index.add(DistSpec("bare", "1.0"), sdist=True)
        assert pins(await compiler.compile("bare")) == {"bare": "1.0"}  # pages cached
        error = await compiler.fail("bare", generate_hashes=True, offline=True)
        assert error.code == ErrorCode.OFFLINE_MISS
        assert "the hash of bare-1.0" in error.message
        assert "--offline" in error.message

    async def test_only_the_files_the_options_allow(self, compiler: Compiler) -> None:
        index = compiler.index
        index.add(DistSpec("both", "1.0"), sdist=True)
        wheel, sdist = sorted(index.files("both"), key=lambda f: not f.filename.endswith(".whl"))
        binary = await compiler.compile("both", generate_hashes=True, only_binary=[":all:"])
        assert binary.packages[0].hashes == [f"sha256:{wheel.sha256}"]
        source = await compiler.compile("both", generate_hashes=True, no_binary=[":all:"])
        assert source.packages[0].hashes == [f"sha256:{sdist.sha256}"]

    async def test_without_the_option_there_are_none(self, compiler: Compiler) -> None:
        release(compiler.index, "lib==1.0")
        result = await compiler.compile("lib")
        assert result.packages[0].hashes == []
        assert "--hash" not in result.output


@pytest.mark.usefixtures("web")
class TestRoundTrip:
    @pytest.mark.parametrize(
        "hashes", [pytest.param(False, id="plain"), pytest.param(True, id="hashes")]
    )
    async def test_the_output_resolves_to_itself(self, compiler: Compiler, hashes: bool) -> None:
        release(compiler.index, "lin==1.0")
        compiler.write(
            "requirements.in",
            "web[async]\nlib<2\nlin ; sys_platform == 'linux'\nwin ; sys_platform == 'win32'\n",
        )
        first = await compiler.compile(
            files=["requirements.in"],
            output_file="requirements.txt",
            generate_hashes=hashes,
            python_platform="linux",
        )
        written = compiler.cwd / "requirements.txt"
        assert pins_of_text(written) == pins(first)
        again = await compiler.compile(
            files=["requirements.txt"],
            output_file="again.txt",
            generate_hashes=hashes,
            python_platform="linux",
        )
        assert pins(again) == pins(first)
        assert pins_of_text(compiler.cwd / "again.txt") == pins(first)
        assert [p.hashes for p in again.packages] == [p.hashes for p in first.packages]
        assert {p.name: p.marker for p in again.packages} == {
            p.name: p.marker for p in first.packages
        }


class TestResult:
    async def test_structure(self, compiler: Compiler) -> None:
        release(compiler.index, "app==1.0", "lib>=1")
        release(compiler.index, "lib==1.0", yanked="bad")
        release(compiler.index, "lib==1.1")
        compiler.write("requirements.in", "app ; python_version >= '3'\n")
        result = await compiler.compile(
            "lib", files=["requirements.in"], python_version="3.12", python_platform="linux"
        )
        assert result.target.startswith("CPython 3.12.0 on linux x86_64")
        assert [p.name for p in result.packages] == ["app", "lib"]
        app, lib = result.packages
        assert app.version == "1.0"
        assert app.filename == "app-1.0-py3-none-any.whl"
        assert app.url == compiler.index.url_for("app-1.0-py3-none-any.whl")
        assert app.index == compiler.index.simple_url + "/"
        assert app.marker == 'python_version >= "3"'
        assert app.direct
        assert [(v.kind, v.name, v.line) for v in app.via] == [
            ("requirement", "requirements.in", 1)
        ]
        assert lib.direct
        assert lib.marker is None
        assert not lib.yanked
        assert [(v.kind, v.name, v.line) for v in lib.via] == [
            ("package", "app", None),
            ("requirement", "command line", None),
        ]
        assert result.output_file is None
        assert not result.wrote
        assert result.elapsed > 0
        assert result.warnings == []

    async def test_an_unreadable_page_entry_is_skipped(
        self, compiler: Compiler, caplog: pytest.LogCaptureFixture
    ) -> None:
        release(compiler.index, "lib==1.0")
        broken = "lib-2.0-py3-none-any.whl"
        compiler.index.extra_json_entries["lib"] = [{"filename": broken, "url": 20}]
        with caplog.at_level(logging.WARNING):
            assert await compiler.pins("lib") == {"lib": "1.0"}
        assert any(broken in r.getMessage() for r in caplog.records)
        # Refetched, the page is the same; so is the answer, and the user is told why.
        result = await compiler.compile("lib", refresh=True)
        assert pins(result) == {"lib": "1.0"}
        assert compiler.index.hits["/simple/lib/"] == 2
        assert [w for w in result.warnings if broken in w] == [
            f"{broken} on {compiler.index.simple_url}/ was skipped: its index entry is unusable "
            "(Expected `str`, got `int` - at `$.url`)"
        ]

    async def test_entry_values_of_the_wrong_type_are_read_as_pip_reads_them(
        self, compiler: Compiler
    ) -> None:
        # "yanked": null is not yanked and a size that is no number is unknown (pip, uv):
        # the newest version stays, and its hashes are all listed for --require-hashes.
        release(compiler.index, "lib==1.0")
        compiler.index.add(DistSpec("lib", "2.0", tag="py3-none-any"))
        compiler.index.add(DistSpec("lib", "2.0", tag="cp312-cp312-win_amd64"))
        for f in compiler.index.files("lib"):
            if f.filename.startswith("lib-2.0"):
                compiler.index.json_overrides[f.filename] = {"yanked": None, "size": "1234"}
        result = await compiler.compile("lib", generate_hashes=True)
        assert pins(result) == {"lib": "2.0"}
        assert result.warnings == []
        wanted = sorted(
            f"sha256:{f.sha256}" for f in compiler.index.files("lib") if "2.0" in f.filename
        )
        assert sorted(result.packages[0].hashes) == wanted

    async def test_an_upload_time_without_an_offset_is_utc(self, compiler: Compiler) -> None:
        release(compiler.index, "lib==1.0")
        release(compiler.index, "lib==2.0")
        for f in compiler.index.files("lib"):
            year = "2020" if f.filename.startswith("lib-1.0") else "2022"
            compiler.index.json_overrides[f.filename] = {"upload-time": f"{year}-01-01T00:00:00"}
        result = await compiler.compile("lib", exclude_newer="2021-01-01")
        assert pins(result) == {"lib": "1.0"}

    async def test_header_annotations_and_index_lines(self, compiler: Compiler) -> None:
        release(compiler.index, "lib==1.0")
        plain = await compiler.compile("lib", command="burrow compile lib -q")
        assert plain.output == (
            "# This file was autogenerated by burrow via the following command:\n"
            "#    burrow compile lib -q\n"
            "lib==1.0\n"
            "    # via command line\n"
        )
        bare = await compiler.compile("lib", header=False, annotate=False)
        assert bare.output == "lib==1.0\n"
        emitted = await compiler.compile("lib", header=False, emit_index_url=True)
        assert emitted.output.splitlines()[0] == f"--index-url {compiler.index.simple_url}"

    def test_the_default_index_is_written_too(self, tmp_path: Path) -> None:
        params = m.ResolveParams(env=m.ClientEnv(cwd=str(tmp_path)), emit_index_url=True)
        assert _index_lines(params, m.IndexOptions()) == ["--index-url https://pypi.org/simple"]
        no_index = m.IndexOptions(no_index=True, find_links=["./wheels"])
        assert _index_lines(params, no_index) == ["--no-index", "--find-links ./wheels"]

    async def test_credentials_never_reach_the_output(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "lib==1.0")
        index.auth = ("user", "s3cret")
        url = index.simple_url.replace("http://", "http://user:s3cret@")
        result = await compiler.compile("lib", index_url=url, emit_index_url=True)
        assert "s3cret" not in result.output
        assert "--index-url http://user:****@127.0.0.1:" in result.output
        assert "s3cret" not in result.packages[0].url + result.packages[0].index

    async def test_a_lone_token_never_reaches_the_output(self, compiler: Compiler) -> None:
        # Many indexes take a token as the user part alone: https://TOKEN@host/simple.
        release(compiler.index, "lib==1.0")
        url = compiler.index.simple_url.replace("http://", "http://ghp_T0KEN@")
        result = await compiler.compile("lib", index_url=url, emit_index_url=True)
        assert "ghp_T0KEN" not in result.output
        assert "--index-url http://****@127.0.0.1:" in result.output


class TestWarmPath:
    async def test_a_second_resolve_makes_no_requests_while_pages_are_fresh(
        self, compiler: Compiler
    ) -> None:
        index = compiler.index
        release(index, "app==1.0", "lib")
        release(index, "lib==1.0")
        first = await compiler.compile("app")
        assert first.pages == {"memory": 0, "disk": 0, "network": 2}
        index.reset_hits()
        second = await compiler.compile("app")
        assert pins(second) == pins(first)
        assert not index.hits
        assert second.pages == {"memory": 2, "disk": 0, "network": 0}

    async def test_a_new_daemon_serves_the_pages_from_disk(
        self, compiler: Compiler, tmp_path: Path
    ) -> None:
        index = compiler.index
        release(index, "app==1.0", "lib")
        release(index, "lib==1.0")
        await compiler.compile("app")
        # A daemon that stops drains its background cache writes first.
        await compiler.services.index.drain()
        index.reset_hits()
        async with open_compiler(tmp_path, index) as restarted:
            result = await restarted.compile("app")
        assert pins(result) == {"app": "1.0", "lib": "1.0"}
        assert not index.hits
        assert result.pages == {"memory": 0, "disk": 2, "network": 0}

    async def test_refresh_revalidates_with_conditional_requests(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "app==1.0", "lib")
        release(index, "lib==1.0")
        await compiler.compile("app")
        index.reset_hits()
        result = await compiler.compile("app", refresh=True)
        assert result.pages == {"memory": 0, "disk": 0, "network": 2}
        pages = [r for r in index.requests if r.path.startswith("/simple/")]
        assert sorted(r.path for r in pages) == ["/simple/app/", "/simple/lib/"]
        assert all(r.status == 304 for r in pages)
        assert all("If-None-Match" in r.headers for r in pages)
        # Metadata does not change under a file's name: nothing else was asked for.
        assert len(index.requests) == 2

    async def test_refresh_sees_a_new_release(self, compiler: Compiler) -> None:
        index = compiler.index
        release(index, "lib==1.0")
        assert await compiler.pins("lib") == {"lib": "1.0"}
        release(index, "lib==2.0")
        assert await compiler.pins("lib") == {"lib": "1.0"}
        assert await compiler.pins("lib", refresh=True) == {"lib": "2.0"}


class TestProgress:
    async def test_phases(self, compiler: Compiler) -> None:
        release(compiler.index, "app==1.0", "lib")
        release(compiler.index, "lib==1.0")
        await compiler.compile("app")
        assert compiler.progress[0] == ("reading inputs", 0, None)
        resolving = [p for p in compiler.progress if p[0] == "resolving"]
        assert resolving
        assert max(current for _, current, _ in resolving) >= 2


class TestLocalFiles:
    async def test_a_wheel_rebuilt_under_the_same_name_is_read_again(
        self, compiler: Compiler, dist_factory: DistFactory
    ) -> None:
        wheels = compiler.cwd / "wheels"
        wheels.mkdir()

        def build(*requires: str) -> None:
            for spec in (DistSpec("depa", "1.0"), DistSpec("depb", "1.0")):
                shutil.copy(dist_factory.wheel(spec), wheels)
            built = dist_factory.wheel(DistSpec("mine", "0.1", requires_dist=list(requires)))
            target = wheels / built.name
            previous = target.stat().st_mtime_ns if target.exists() else 0
            shutil.copy(built, target)
            # Same name, new content: make sure the mtime moves even on a coarse clock.
            os.utime(target, ns=(previous + 10**9, previous + 10**9))

        compiler.write("req.in", "--no-index\n--find-links ./wheels\nmine\n")
        build("depa")
        first = await compiler.compile(files=["req.in"], index_url=None)
        assert pins(first) == {"mine": "0.1", "depa": "1.0"}
        build("depb")
        second = await compiler.compile(files=["req.in"], index_url=None, refresh=True)
        assert pins(second) == {"mine": "0.1", "depb": "1.0"}


LOCAL_PROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "Local.Pkg"
version = "0.3.1"
requires-python = ">=3.8"
dependencies = [{deps}]
dynamic = [{dynamic}]

[project.optional-dependencies]
fast = ["extra-lib"]
"""


class TestDirectReferences:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index: FakeIndex) -> None:
        for version in ("1.0", "2.0"):
            release(fake_index, f"lib=={version}")
        release(fake_index, "extra-lib==1.0")

    def _project(self, compiler: Compiler, deps: str = '"lib>=2"', dynamic: str = "") -> Path:
        project = compiler.cwd / "localpkg"
        project.mkdir(exist_ok=True)
        (project / "pyproject.toml").write_text(
            LOCAL_PROJECT.format(deps=deps, dynamic=dynamic), encoding="utf-8"
        )
        return project

    async def test_an_editable_project_directory_with_static_metadata(
        self, compiler: Compiler
    ) -> None:
        project = self._project(compiler)
        compiler.write("req.in", "-e ./localpkg[fast]\n")
        result = await compiler.compile(files=["req.in"], output_file="req.txt")
        assert pins(result) == {"local-pkg": "0.3.1", "lib": "2.0", "extra-lib": "1.0"}
        (local,) = (p for p in result.packages if p.name == "local-pkg")
        assert local.editable
        assert local.direct
        assert local.hashes == []
        lines = result.output.splitlines()
        assert f"-e {project.as_uri()}" in lines
        assert "    # via local-pkg" in lines  # lib and extra-lib
        # The file reads back as the same resolution: like pip-compile's, the "-e URL"
        # line carries no extras, and the extra's dependencies are pins of their own.
        again = await compiler.compile(files=["req.txt"], generate_hashes=True)
        assert pins(again) == pins(result)
        (local,) = (p for p in again.packages if p.name == "local-pkg")
        assert local.editable
        assert local.hashes == []

    async def test_a_plain_directory_reference_and_an_edit_of_it(self, compiler: Compiler) -> None:
        project = self._project(compiler)
        result = await compiler.compile(f"local-pkg @ {project.as_uri()}")
        assert f"local-pkg @ {project.as_uri()}" in result.output
        assert pins(result) == {"local-pkg": "0.3.1", "lib": "2.0"}
        # The same daemon reads the edited project again: no stale metadata.
        self._project(compiler, deps='"lib<2"')
        assert pins(await compiler.compile(f"local-pkg @ {project.as_uri()}")) == {
            "local-pkg": "0.3.1",
            "lib": "1.0",
        }

    @pytest.mark.parametrize(
        ("deps", "dynamic"),
        [
            pytest.param('"lib"', '"version"', id="version"),
            pytest.param('"lib"', '"dependencies"', id="dependencies"),
        ],
    )
    async def test_dynamic_metadata_is_built_with_the_backend_it_names(
        self, compiler: Compiler, deps: str, dynamic: str
    ) -> None:
        # This index has no setuptools: the build says which build requirement it misses.
        project = self._project(compiler, deps=deps, dynamic=dynamic)
        compiler.write("req.in", "./localpkg\n")
        error = await compiler.fail(files=["req.in"])
        assert error.code == ErrorCode.BUILD_FAILED
        assert str(project) in error.message
        assert "setuptools>=61" in error.message
        assert "'setuptools' was not found" in error.message

    async def test_a_directory_with_dynamic_metadata_is_built(
        self, compiler: Compiler, dist_factory: DistFactory
    ) -> None:
        tree = dist_factory.source_tree(
            DistSpec("treepkg", "2.5", requires_dist=["lib<2"]), static_metadata=False
        )
        assert await compiler.pins(f"treepkg @ {tree.as_uri()}") == {"treepkg": "2.5", "lib": "1.0"}

    async def test_two_places_for_one_project_are_refused(self, compiler: Compiler) -> None:
        project = self._project(compiler)
        other = compiler.cwd / "elsewhere"
        other.mkdir()
        (other / "pyproject.toml").write_text(
            (project / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        compiler.write("req2.in", f"-e ./localpkg\nlocal-pkg @ {other.as_uri()}\n")
        error = await compiler.fail(files=["req2.in"])
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert "required from two places" in error.message
        assert "req2.in" in error.message

    async def test_a_hash_cannot_check_a_directory(self, compiler: Compiler) -> None:
        self._project(compiler)
        compiler.write("req.in", "./localpkg --hash=sha256:" + "0" * 64 + "\n")
        error = await compiler.fail(files=["req.in"])
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert "--hash cannot check a directory" in error.message

    async def test_an_unpacked_sdist_takes_the_version_of_its_pkg_info(
        self, compiler: Compiler
    ) -> None:
        project = self._project(compiler, dynamic='"version"')
        (project / "PKG-INFO").write_text(
            "Metadata-Version: 2.2\nName: Local.Pkg\nVersion: 0.9\nRequires-Dist: lib<2\n",
            encoding="utf-8",
        )
        assert await compiler.pins("./localpkg") == {"local-pkg": "0.9", "lib": "1.0"}

    async def test_a_project_table_without_a_name_is_built(self, compiler: Compiler) -> None:
        project = self._project(compiler)
        text = (project / "pyproject.toml").read_text(encoding="utf-8")
        (project / "pyproject.toml").write_text(
            text.replace('name = "Local.Pkg"\n', ""), encoding="utf-8"
        )
        error = await compiler.fail(f"local-pkg @ {project.as_uri()}")
        assert error.code == ErrorCode.BUILD_FAILED
        assert error.message.startswith(f"building {project} failed")
        assert "==?" not in error.message

    async def test_a_directory_of_another_project_is_refused(self, compiler: Compiler) -> None:
        project = self._project(compiler)
        error = await compiler.fail(f"other @ {project.as_uri()}")
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert "is a distribution of local-pkg, not of other" in error.message

    async def test_a_local_sdist_with_static_metadata(
        self, compiler: Compiler, dist_factory: DistFactory
    ) -> None:
        sdist = dist_factory.sdist(DistSpec("srcpkg", "1.2", requires_dist=["lib<2"]))
        shutil.copy(sdist, compiler.cwd / sdist.name)
        compiler.write("req.in", f"./{sdist.name}\n")
        result = await compiler.compile(files=["req.in"])
        assert pins(result) == {"srcpkg": "1.2", "lib": "1.0"}
        assert f"srcpkg @ {(compiler.cwd / sdist.name).as_uri()}" in result.output

    @pytest.mark.parametrize("suffix", [".tar.lz", ".tar.zst"])
    async def test_an_sdist_in_a_format_the_standard_library_cannot_read(
        self, compiler: Compiler, suffix: str
    ) -> None:
        archive = compiler.cwd / f"srcpkg-1.2{suffix}"
        archive.write_bytes(b"not read")
        error = await compiler.fail(f"srcpkg @ {archive.as_uri()}")
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert error.message.startswith(
            f"srcpkg-1.2{suffix} is a source archive in a format burrowd cannot read"
        )
        assert "repack it as a .tar.gz" in error.message

    async def test_a_remote_sdist_with_static_metadata(self, compiler: Compiler) -> None:
        index = compiler.index
        (sdist,) = index.add(
            DistSpec("srcpkg", "1.2", requires_dist=["lib<2"]), wheel=False, sdist=True
        )
        url = index.url_for(sdist)
        result = await compiler.compile(f"srcpkg @ {url}", generate_hashes=True)
        assert pins(result) == {"srcpkg": "1.2", "lib": "1.0"}
        assert f"srcpkg @ {url}" in result.output
        (src,) = (p for p in result.packages if p.name == "srcpkg")
        assert src.hashes == [f"sha256:{sdist.sha256}"]

    async def test_a_repository_that_cannot_be_fetched(self, compiler: Compiler) -> None:
        error = await compiler.fail("srcpkg @ git+https://example.invalid/srcpkg.git@v1")
        assert error.code == ErrorCode.NETWORK_ERROR
        assert "git fetch failed" in error.message
        assert "example.invalid/srcpkg.git" in error.message
