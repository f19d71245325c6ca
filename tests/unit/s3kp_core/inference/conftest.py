"""Fixtures of the inference client's specification: a clean secret registry, a fake clock, mocked HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from s3kp_core.redact import unregister_all

from tests.unit.s3kp_core.inference.builders import FakeTime


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    unregister_all()
    yield
    unregister_all()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
