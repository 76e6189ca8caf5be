"""Turn the options of a package request into what the services work with.

Index options from the command line (RPC params) and from requirements files merge the
way uv merges them: an index URL given on the command line wins over one in a file, extra
indexes and find-links add up, ``--no-index`` anywhere switches the indexes off.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from msgspec import Struct
from packaging.utils import canonicalize_name

from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.index.client import Freshness, IndexSettings
from burrowd.daemon.inputs.model import IndexOptions as FileOptions
from burrowd.daemon.inputs.model import Origin, RequirementEntry
from burrowd.daemon.inputs.requirements_txt import parse_requirement_text, parse_requirements_file
from burrowd.daemon.interpreters import PythonRequest, Target
from burrowd.daemon.services import Services
from burrowd.protocol.messages import BuildOptions, ClientEnv, IndexOptions, PythonOptions

__all__ = [
    "BuildSettings",
    "PackageRequest",
    "RequirementInputs",
    "prepare",
    "read_requirement_inputs",
]


def command_line_entries(requirements: list[str], cwd: Path) -> list[RequirementEntry]:
    """Parse requirements given on the command line (or over RPC)."""
    return [
        parse_requirement_text(text, origin=Origin(None, None), base_dir=cwd)
        for text in requirements
    ]


class BuildSettings(Struct, frozen=True):
    """Whether and how a request may build sources (``--no-build``, ``--no-build-isolation``)."""

    allowed: bool = True
    isolation: bool = True


class PackageRequest(Struct, frozen=True):
    """The indexes, freshness rules and target of one request."""

    settings: IndexSettings
    fresh: Freshness
    target: Target
    cwd: Path
    build: BuildSettings = BuildSettings()
    #: The client's environment variables, which builds run with (as pip's and uv's do):
    #: ``None`` for work no client asked for, which uses the daemon's own.
    variables: dict[str, str] | None = None


class RequirementInputs(Struct):
    """Requirements read from the command line and requirements files, with their options."""

    entries: list[RequirementEntry]
    options: FileOptions | None


def read_requirement_inputs(
    env: ClientEnv, requirements: list[str], files: list[str], stdin: str | None = None
) -> RequirementInputs:
    """Read requirements given directly and in requirements files (``-`` is ``stdin``).

    Blocking (it reads files): the daemon runs it in a worker thread.
    """
    cwd = Path(env.cwd)
    entries = command_line_entries(requirements, cwd)
    options: FileOptions | None = None
    variables = env.variables or None
    for name in files:
        if name == "-" and stdin is None:
            raise InvalidRequirement("'-' names standard input, but the client sent none")
        parsed = parse_requirements_file(
            name, cwd=cwd, env=variables, text=stdin if name == "-" else None
        )
        entries.extend(parsed.requirements)
        if options is None:
            options = parsed.options
        else:
            options.merge(parsed.options)
    return RequirementInputs(entries, options)


def merge_index_options(params: IndexOptions, files: FileOptions | None) -> IndexOptions:
    """Return the request's index options with those read from requirements files."""
    if files is None:
        return params
    index_url = params.index_url or files.index_url
    extras = [
        *params.extra_index_urls,
        *(u for u in files.extra_index_urls if u not in params.extra_index_urls),
    ]
    links = [*params.find_links, *(u for u in files.find_links if u not in params.find_links)]
    return IndexOptions(
        index_url=index_url,
        extra_index_urls=extras,
        find_links=links,
        no_index=params.no_index or files.no_index,
        offline=params.offline,
        refresh=params.refresh,
        refresh_packages=params.refresh_packages,
    )


async def prepare(
    services: Services,
    env: ClientEnv,
    index: IndexOptions,
    python: PythonOptions,
    *,
    warm: Iterable[str] = (),
    target: Target | None = None,
    build: BuildOptions | None = None,
) -> PackageRequest:
    """Find the target interpreter and build the index settings of a request.

    The project pages of ``warm`` (the request's direct requirements) are requested at
    once, so the network works while the interpreter is found and queried. A ``target``
    already known (the environment a sync changes) is used as it is.
    """
    cwd = Path(env.cwd)
    links = [
        link if "://" in link else os.path.normpath(os.path.join(cwd, link))
        for link in index.find_links
    ]
    settings = IndexSettings.build(
        services.http,
        index_url=index.index_url,
        extra_index_urls=index.extra_index_urls,
        find_links=links,
        no_index=index.no_index,
    )
    fresh = Freshness(
        refresh_all=index.refresh,
        refresh_packages=frozenset(canonicalize_name(p) for p in index.refresh_packages),
        offline=index.offline,
    )
    early = [
        asyncio.ensure_future(services.index.project_files(settings, name, fresh))
        for name in dict.fromkeys(warm)
    ]
    for task in early:
        # Errors surface again, with context, when the resolver asks for the same page.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    if target is None:
        info = await services.interpreters.find(
            PythonRequest(
                python=python.python, cwd=env.cwd, virtual_env=env.virtual_env, path=env.path
            )
        )
        target = services.interpreters.target(
            info, python_version=python.python_version, python_platform=python.python_platform
        )
    settings_ = BuildSettings()
    if build is not None:
        settings_ = BuildSettings(
            allowed=not build.no_build, isolation=not build.no_build_isolation
        )
    return PackageRequest(settings, fresh, target, cwd, settings_, env.variables or None)
