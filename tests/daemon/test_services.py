"""The services a daemon composes, built from its ``Config``."""

from __future__ import annotations

from pathlib import Path

import pytest

from burrowd.daemon.config import Config
from burrowd.daemon.index.http import RetryPolicy
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services


def _services(config: Config) -> Services:
    return Services(config=config, rpc=RpcServer({}), socket_path=config.socket_path)


def _config(directory: Path) -> Config:
    return Config(
        socket_path=directory / "run" / "burrowd.sock",
        lock_path=directory / "run" / "burrowd.lock",
        cache_dir=directory / "cache",
        log_file=directory / "log" / "burrowd.log",
        state_dir=directory / "state",
    )


class TestHttp:
    def test_the_retry_policy_comes_from_the_config(self, tmp_path: Path) -> None:
        config = _config(tmp_path).with_changes(
            retries=0, retry_backoff=0.25, retry_budget=5.0, http_timeout=7.0
        )
        policy = _services(config).http.policy
        assert policy == RetryPolicy(retries=0, backoff=0.25, budget=5.0, timeout=7.0)
        assert policy.attempts == 1

    def test_the_default_config_gives_the_default_policy(self, tmp_path: Path) -> None:
        assert _services(_config(tmp_path)).http.policy == RetryPolicy()

    def test_the_client_reads_no_variable_itself(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Only Config.from_env reads the environment: a Config built otherwise is obeyed.
        monkeypatch.setenv("BURROW_RETRIES", "7")
        monkeypatch.setenv("BURROW_HTTP_TIMEOUT", "3")
        assert _services(_config(tmp_path)).http.policy == RetryPolicy()

    def test_the_variables_reach_the_client_through_the_config(self, tmp_path: Path) -> None:
        env = {
            "BURROW_CACHE_DIR": str(tmp_path / "cache"),
            "BURROW_UNPACK_PROCESSES": "0",
            "BURROW_RETRIES": "0",
            "BURROW_RETRY_BACKOFF": "0.1",
            "BURROW_RETRY_BUDGET": "4",
            "BURROW_HTTP_TIMEOUT": "bad",
        }
        config = Config.from_env(env).with_changes(state_dir=tmp_path / "state")
        policy = _services(config).http.policy
        assert policy == RetryPolicy(retries=0, backoff=0.1, budget=4.0, timeout=60.0)
