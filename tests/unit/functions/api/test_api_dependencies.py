"""The API function's cached collaborators: a rotated cursor key must not strand a pool of threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import api_dependencies
import pytest
from s3kp_core.results_query import LIST_SHARDS, ListFilters


class _ConcurrentEmptyShards:
    """Every shard is empty, but each listing's shard Queries must all be in flight at once: so a
    listing occupies LIST_SHARDS threads of whatever pool runs it."""

    def __init__(self, *_: Any) -> None:
        self._together = threading.Barrier(LIST_SHARDS, timeout=5)

    def query(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        self._together.wait()
        return [], None

    def get_item(self, result_id: str) -> dict[str, Any] | None:
        return None


@pytest.fixture
def dependencies(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("RESULTS_TABLE", "results")
    monkeypatch.setenv("CURSOR_SECRET", "unit-test-cursor-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("CURSOR_SECRET_ARN", raising=False)
    monkeypatch.setattr(api_dependencies, "DynamoDBItems", _ConcurrentEmptyShards)
    api_dependencies.reset()
    yield api_dependencies
    api_dependencies.reset()


def shard_query_threads() -> int:
    return sum(thread.name.startswith("shard-query") for thread in threading.enumerate())


def test_rotating_the_cursor_key_reuses_one_pool_of_shard_query_threads(
    dependencies: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the cursor key rotates between requests (a new cached ResultsQuery each time)
    WHEN each key serves a listing THEN every query runs on the same pool, and no more than one pool's
    threads are alive afterwards."""
    threads_before = shard_query_threads()
    readers = []
    for rotation in range(4):
        key = f"rotated-cursor-key-{rotation:04d}".encode()
        monkeypatch.setattr(dependencies, "_cursor_key", lambda _settings, key=key: key)
        reader = dependencies.results_reader()
        assert reader.list_results(ListFilters(), limit=10, cursor=None).items == []
        readers.append(reader)

    assert len({id(reader) for reader in readers}) == 4  # each rotation did build a new query
    assert len({id(reader.executor) for reader in readers}) == 1
    assert shard_query_threads() - threads_before <= LIST_SHARDS


def test_reset_ends_the_pools_threads(dependencies: Any) -> None:
    dependencies.results_reader().list_results(ListFilters(), limit=10, cursor=None)
    pool = dependencies.results_reader().executor

    dependencies.reset()

    with pytest.raises(RuntimeError, match="shutdown"):  # shut down: its idle threads exit
        pool.submit(print)
