"""The daemon's settings, as ``Config.from_env`` reads them from ``BURROW_*`` variables."""

from __future__ import annotations

import logging

import pytest

from burrowd.daemon.config import (
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BUDGET,
    Config,
)

#: Each retry variable, the field it sets and that field's default.
RETRY_SETTINGS = {
    "BURROW_RETRIES": ("retries", DEFAULT_RETRIES),
    "BURROW_RETRY_BACKOFF": ("retry_backoff", DEFAULT_RETRY_BACKOFF),
    "BURROW_RETRY_BUDGET": ("retry_budget", DEFAULT_RETRY_BUDGET),
    "BURROW_HTTP_TIMEOUT": ("http_timeout", DEFAULT_HTTP_TIMEOUT),
}


class TestRetrySettings:
    def test_defaults(self, caplog: pytest.LogCaptureFixture) -> None:
        config = Config.from_env({})
        assert (config.retries, config.retry_backoff, config.retry_budget) == (2, 0.5, 60.0)
        assert config.http_timeout == 60.0
        for field, default in RETRY_SETTINGS.values():
            assert getattr(config, field) == default
        assert caplog.records == []

    @pytest.mark.parametrize(
        ("name", "raw", "expected"),
        [
            pytest.param("BURROW_RETRIES", "5", 5, id="retries"),
            pytest.param("BURROW_RETRIES", "0", 0, id="no-retries"),
            pytest.param("BURROW_RETRIES", " 3 ", 3, id="retries-spaced"),
            pytest.param("BURROW_RETRY_BACKOFF", "0.1", 0.1, id="backoff"),
            pytest.param("BURROW_RETRY_BACKOFF", "0", 0.0, id="no-backoff"),
            pytest.param("BURROW_RETRY_BUDGET", "2.5", 2.5, id="budget"),
            pytest.param("BURROW_RETRY_BUDGET", "0", 0.0, id="no-budget"),
            pytest.param("BURROW_HTTP_TIMEOUT", "7", 7.0, id="timeout"),
        ],
    )
    def test_reads_a_good_value(
        self, name: str, raw: str, expected: float, caplog: pytest.LogCaptureFixture
    ) -> None:
        field, _default = RETRY_SETTINGS[name]
        value = getattr(Config.from_env({name: raw}), field)
        assert value == expected
        assert type(value) is type(expected)
        assert caplog.records == []

    @pytest.mark.parametrize(
        ("name", "raw"),
        [
            pytest.param("BURROW_RETRIES", "-1", id="retries-negative"),
            pytest.param("BURROW_RETRIES", "lots", id="retries-word"),
            pytest.param("BURROW_RETRIES", "1.5", id="retries-fraction"),
            pytest.param("BURROW_RETRY_BACKOFF", "-0.5", id="backoff-negative"),
            pytest.param("BURROW_RETRY_BACKOFF", "soon", id="backoff-word"),
            pytest.param("BURROW_RETRY_BUDGET", "-1", id="budget-negative"),
            pytest.param("BURROW_HTTP_TIMEOUT", "-3", id="timeout-negative"),
            pytest.param("BURROW_HTTP_TIMEOUT", "1m", id="timeout-unit"),
        ],
    )
    def test_a_bad_value_is_ignored_with_a_warning(
        self, name: str, raw: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        field, default = RETRY_SETTINGS[name]
        with caplog.at_level(logging.WARNING, logger="burrowd.daemon.config"):
            config = Config.from_env({name: raw})  # not a ConfigError: the daemon starts
        assert getattr(config, field) == default
        (record,) = caplog.records
        assert record.levelno == logging.WARNING
        assert f"ignoring {name}={raw!r}" in record.getMessage()

    @pytest.mark.parametrize("name", list(RETRY_SETTINGS))
    @pytest.mark.parametrize("raw", ["", "  "], ids=["empty", "blank"])
    def test_an_empty_value_is_the_default(
        self, name: str, raw: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        field, default = RETRY_SETTINGS[name]
        assert getattr(Config.from_env({name: raw}), field) == default
        assert caplog.records == []

    def test_a_zero_http_timeout_is_the_default(self, caplog: pytest.LogCaptureFixture) -> None:
        assert Config.from_env({"BURROW_HTTP_TIMEOUT": "0"}).http_timeout == DEFAULT_HTTP_TIMEOUT
        assert caplog.records == []
