"""The argument parser is built only as far as the command line needs."""

from __future__ import annotations

import argparse

import pytest

from burrowd.client.cli import build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_a_command_builds_only_its_own_parser() -> None:
    assert _commands(build_parser(["daemon", "status"])) == {"daemon"}


def test_version_builds_no_command_parser() -> None:
    assert _commands(build_parser(["--version"])) == set()


def test_no_command_builds_them_all_for_the_usage_message() -> None:
    assert {"compile", "sync", "daemon", "cache"} <= _commands(build_parser([]))


def test_help_with_version_still_lists_the_commands() -> None:
    assert "compile" in _commands(build_parser(["-h", "--version"]))


def test_help_fits_the_width_columns_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    text = build_parser(["compile"]).format_help()
    assert max(len(line) for line in text.splitlines()) <= 58
    monkeypatch.setenv("COLUMNS", "200")
    wide = build_parser(["compile"]).format_help()
    assert max(len(line) for line in wide.splitlines()) > 60


def test_the_client_knows_the_daemons_distribution_suffixes() -> None:
    # The client keeps its own copy (it does not import the daemon): a distribution file
    # named on `burrow compile`'s command line is a requirement, not a file to read.
    from burrowd.client import cli  # noqa: PLC0415
    from burrowd.daemon.index.parse import DIST_SUFFIXES  # noqa: PLC0415

    assert cli._DIST_SUFFIXES == DIST_SUFFIXES
