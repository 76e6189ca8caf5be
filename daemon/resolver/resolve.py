"""Drive the PubGrub solver with the async provider and assemble the resolution.

The solver is a generator of questions; this loop answers each one by awaiting the provider,
so the event loop stays free while pages and metadata arrive (in parallel, thanks to the
provider's prefetching). A failure becomes :class:`ResolutionImpossible` carrying the
solver's explanation and its derivation tree.
"""

from __future__ import annotations

from msgspec import Struct, field
from packaging.version import Version

from burrowd.daemon.errors import ResolutionImpossible
from burrowd.daemon.index.client import DIRECT
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.inputs.model import Origin
from burrowd.daemon.resolver.provider import ROOT, ROOT_VERSION, Pkg, Provider
from burrowd.daemon.resolver.pubgrub import Answer, ChooseVersion, NoSolution, solve
from burrowd.daemon.scheduler import pace

__all__ = ["Pin", "Resolution", "Via", "run_resolver"]


class Via(Struct, frozen=True, order=True):
    """Why a package is in the resolution: a requirement line or another package."""

    kind: str  # "requirement" | "constraint" | "override" | "package" | "project"
    #: The package that depends on it, the file's display path, or for a project's own
    #: requirement "NAME (pyproject.toml)".
    name: str
    line: int | None = None


class Pin(Struct):
    """One resolved package."""

    name: str
    version: Version
    file: IndexFile
    location: str
    extras: set[str] = field(default_factory=set)
    via: set[Via] = field(default_factory=set)
    #: The marker of the requirement lines that brought it in, when only they did.
    marker: str | None = None
    direct: bool = False
    #: Required with ``-e``: written back as ``-e URL``.
    editable: bool = False


class Resolution(Struct):
    """The resolved packages, by canonical name, in name order."""

    pins: dict[str, Pin]
    warnings: list[str]


def _origin_via(origin: Origin, kind: str) -> Via:
    if origin.file is None:
        return Via(kind, "command line")
    shown = origin.display or origin.file
    if kind == "requirement" and origin.project is not None:
        return Via("project", f"{origin.project} ({shown})", origin.line)
    return Via(kind, shown, origin.line)


async def run_resolver(provider: Provider) -> Resolution:
    """Resolve; raise :class:`ResolutionImpossible` with the explanation when impossible."""
    solver = solve(ROOT, ROOT_VERSION)
    answer: Answer[Pkg] | None = None
    try:
        await provider.prepare()
        while True:
            # Yields the loop now and then (status answers at once), and holds a warming
            # job back while requests run.
            await pace()
            try:
                question = solver.send(answer) if answer is not None else next(solver)
            except StopIteration as done:
                solution: dict[Pkg, Version] = done.value
                break
            except NoSolution as exc:
                raise ResolutionImpossible(exc.explanation, exc.tree) from None
            if isinstance(question, ChooseVersion):
                answer = await provider.choose_version(question.package, question.allowed)
            else:
                answer = await provider.get_dependencies(question.package, question.version)
    finally:
        provider.close()
    return _assemble(provider, solution)


def _assemble(provider: Provider, solution: dict[Pkg, Version]) -> Resolution:
    pins: dict[str, Pin] = {}
    for pkg, version in solution.items():
        if pkg == ROOT:
            continue
        pin = pins.get(pkg.name)
        if pin is None:
            choice = provider.choices[(pkg.name, version)]
            pin = pins[pkg.name] = Pin(pkg.name, version, choice.file, choice.location)
        if pkg.extra:
            pin.extras.add(pkg.extra)
    markers: dict[str, list[str | None]] = {}
    for entry in provider.requirements:
        pin = pins.get(entry.name)
        if pin is None:
            continue
        pin.direct = True
        pin.editable = pin.editable or (entry.editable and pin.location == DIRECT)
        pin.via.add(_origin_via(entry.origin, "requirement"))
        marker = entry.requirement.marker
        markers.setdefault(entry.name, []).append(str(marker) if marker is not None else None)
    for name, entries in provider.constraints.items():
        if name in pins:
            for entry in entries:
                pins[name].via.add(_origin_via(entry.origin, "constraint"))
    for name, entries in provider.overrides.items():
        if name in pins:
            for entry in entries:
                pins[name].via.add(_origin_via(entry.origin, "override"))
    for pkg, version in solution.items():
        if pkg == ROOT:
            continue
        for dep in provider.dependency_names(pkg, version):
            if dep in pins and dep != pkg.name:
                pins[dep].via.add(Via("package", pkg.name))
    for name, found in markers.items():
        pin = pins[name]
        only_direct = all(v.kind != "package" for v in pin.via)
        if only_direct and found and None not in found and len(set(found)) == 1:
            pin.marker = found[0]
    ordered = dict(sorted(pins.items()))
    return Resolution(ordered, list(provider.warnings))
