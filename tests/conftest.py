"""Shared fixtures: the fake index and distribution factory live in ``tests.support``."""

pytest_plugins = ["tests.support.plugin"]
