"""The install plan: what an environment holds against what a request wants.

Each wanted distribution is kept when an installed one satisfies it (same version, same
source), installed when missing, and reinstalled when its version or source differs or a
reinstall was asked for. An exact plan (``sync``) also removes everything not wanted,
except the packages it must keep (seed packages of an environment burrowd did not create).
The plan is pure: it reads what :func:`~burrowd.daemon.installer.installed.scan` found and
decides; fetching and checking the wheels, and changing the environment, come after.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from msgspec import Struct, field
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from burrowd.daemon.index.http import strip_credentials
from burrowd.daemon.installer.installed import InstalledDist, SitePackages

__all__ = [
    "SOURCE_RECORD",
    "Plan",
    "Step",
    "Wanted",
    "installed_revision",
    "make_plan",
    "same_url",
]


class Wanted(Struct, frozen=True):
    """One distribution a request wants in the environment."""

    name: NormalizedName
    #: The exact version when known (a ``==`` pin, a resolution, a wheel's filename).
    version: Version | None = None
    #: What an installed version must satisfy when no exact version is known.
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    #: A direct reference (``file://`` for a local path), without its fragment.
    url: str | None = None
    #: The archive's sha256 when known: a changed local wheel is reinstalled.
    sha256: str | None = None
    editable: bool = False
    #: Asked for directly (gets a ``REQUESTED`` file), not only needed by another package.
    requested: bool = True
    #: A git reference's commit and subdirectory (``vcs_info`` of ``direct_url.json``).
    commit: str | None = None
    subdirectory: str | None = None
    #: A project directory's revision (its build files' mtimes), recorded at install.
    revision: str | None = None


class Step(Struct):
    """One decision of a plan."""

    name: NormalizedName
    #: "missing", "version", "source", "reinstall", "duplicate" (install), "extraneous"
    #: (remove), "" (keep).
    reason: str
    wanted: Wanted | None = None
    #: What is installed now under this name (removed before the new one goes in).
    installed: list[InstalledDist] = field(default_factory=list)

    @property
    def previous(self) -> str | None:
        """Return the version being replaced, if any."""
        return self.installed[0].version if self.installed else None


class Plan(Struct):
    """Installs (new and reinstalls), removals and what stays."""

    install: list[Step] = field(default_factory=list)
    remove: list[Step] = field(default_factory=list)
    keep: list[Step] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Return whether the plan changes nothing."""
        return not self.install and not self.remove

    def removals(self) -> list[InstalledDist]:
        """Return every installed distribution the plan takes out (reinstalls included)."""
        out = [d for step in self.remove for d in step.installed]
        out += [d for step in self.install for d in step.installed]
        return out


def same_url(a: str, b: str) -> bool:
    """Return whether two direct references name the same thing (fragments and auth aside)."""
    return _plain_url(a) == _plain_url(b)


def _plain_url(url: str) -> str:
    parts = urlsplit(strip_credentials(url, fragment=False))
    # Scheme and host are case-insensitive; a trailing slash names the same directory.
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}?{parts.query}"


#: Where burrowd records the revision of a project directory it built and installed (uv
#: keeps the same in ``uv_cache.json``): PEP 610's ``dir_info`` has no field for it.
SOURCE_RECORD: Final = "burrow_source.json"


def installed_revision(dist: InstalledDist) -> str | None:
    """Return the source revision recorded at install, if burrowd recorded one."""
    text = dist.read_text(SOURCE_RECORD)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    revision = data.get("revision") if isinstance(data, dict) else None
    return revision if isinstance(revision, str) else None


def _unsatisfied(wanted: Wanted, dist: InstalledDist) -> str | None:
    """Return why ``dist`` does not satisfy ``wanted`` (a reason), or ``None``."""
    try:
        installed = Version(dist.version)
    except InvalidVersion:
        return "version"
    if wanted.version is not None:
        if installed != wanted.version:
            return "version"
    elif not wanted.specifier.contains(installed, prereleases=True):
        return "version"
    direct = dist.direct_url
    if wanted.url is None:
        # A registry requirement is met by the version, whatever the source: an editable
        # checkout or a local build of the pinned version stays, as with uv and pip-sync.
        return None
    if direct is None or not same_url(direct.url, wanted.url):
        return "source"
    if wanted.editable != direct.editable:
        return "source"
    if wanted.commit is not None:
        vcs = direct.vcs_info
        if vcs is None or vcs.commit_id != wanted.commit:
            return "source"
        if (direct.subdirectory or None) != (wanted.subdirectory or None):
            return "source"
    if wanted.revision is not None and installed_revision(dist) != wanted.revision:
        return "source"
    if wanted.sha256 is not None:
        have = direct.archive_info.sha256() if direct.archive_info is not None else None
        if have is None and wanted.url.startswith("file:"):
            return "source"  # a local file with no recorded digest may have changed
        if have is not None and have != wanted.sha256:
            return "source"
    return None


def make_plan(
    wanted: Iterable[Wanted],
    site: SitePackages,
    *,
    exact: bool,
    keep: frozenset[str] = frozenset(),
    reinstall: bool = False,
    reinstall_packages: frozenset[str] = frozenset(),
) -> Plan:
    """Compare ``wanted`` with ``site``.

    :param exact: remove every installed distribution that is not wanted (``sync``).
    :param keep: names an exact plan never removes (seed packages).
    :param reinstall: reinstall everything wanted; ``reinstall_packages`` names only some.
    """
    plan = Plan()
    names: set[str] = set()
    for want in wanted:
        names.add(want.name)
        dists = site.get(want.name)
        if not dists:
            plan.install.append(Step(want.name, "missing", want))
            continue
        if len(dists) > 1:
            reason: str | None = "duplicate"
        elif reinstall or want.name in reinstall_packages:
            reason = "reinstall"
        else:
            reason = _unsatisfied(want, dists[0])
        if reason is None:
            plan.keep.append(Step(want.name, "", want, list(dists)))
        else:
            plan.install.append(Step(want.name, reason, want, list(dists)))
    if exact:
        for name, dists in site.by_name.items():
            if name in names:
                continue
            if name in keep:
                plan.keep.append(Step(name, "", None, list(dists)))
            else:
                plan.remove.append(Step(name, "extraneous", None, list(dists)))
    return plan
