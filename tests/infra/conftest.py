"""Fixtures for the template checks."""

from __future__ import annotations

from typing import Any

import pytest

from s3kp.local.cfn_template import load_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as data, short-form tags (`!Ref`, `!Sub`) expanded to their long form."""
    return load_template()


@pytest.fixture(scope="session")
def expanded() -> dict[str, Any]:
    """template.yaml as `sam deploy` creates it: aws-sam-translator's output (generated roles, their
    inline and managed policies, the functions), intrinsic functions left for CloudFormation."""
    from tests.iam_proof.proof import expanded_template

    return expanded_template()
