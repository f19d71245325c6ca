"""The official clients' fixtures: inference-sdk runs in its own environment (inference_sdk_remote.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.inference_sdk_remote import InferenceSdk


@pytest.fixture(scope="session")
def inference_sdk() -> Iterator[InferenceSdk]:
    sdk = InferenceSdk()
    yield sdk
    sdk.close()
