"""Fixtures for the template checks."""

from __future__ import annotations

from typing import Any

import pytest

from s3kp.local.cfn_template import load_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as data, short-form tags (`!Ref`, `!Sub`) expanded to their long form."""
    return load_template()
