"""The template checks' resource-policy evaluator follows IAM's documented rules for what it supports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.policy_evaluation import Decision, Request, resource_policy_decision

ROLE = "arn:aws:iam::123456789012:role/writer"
ADMIN = "arn:aws:iam::123456789012:role/admin"
OBJECT = "arn:aws:s3:::bucket/out/x.jpg"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _deny_unless(operator: str, values: list[str]) -> dict[str, Any]:
    return {
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:Delete*"],
        "Resource": "arn:aws:s3:::bucket/out/*",
        "Condition": {operator: {"aws:PrincipalArn": values}},
    }


def _decide(policy: dict[str, Any], principal: str | None, action: str = "s3:PutObject") -> Decision:
    context = {} if principal is None else {"aws:PrincipalArn": principal}
    return resource_policy_decision(policy, Request(action, OBJECT, context))


@pytest.mark.parametrize("operator", ["ArnNotEquals", "ArnNotLike"])
def test_a_negated_operator_with_several_values_exempts_each_of_them_and_nobody_else(operator: str) -> None:
    policy = _policy(_deny_unless(operator, [ROLE, ADMIN]))

    assert _decide(policy, ROLE) == Decision.NEUTRAL
    assert _decide(policy, ADMIN, "s3:DeleteObjectVersion") == Decision.NEUTRAL
    assert _decide(policy, "arn:aws:iam::123456789012:role/writer2") == Decision.DENY
    assert _decide(policy, None) == Decision.DENY  # a missing key matches no value
    assert _decide(policy, "arn:aws:iam::123456789012:role/other", "s3:GetObject") == Decision.NEUTRAL


def test_a_positive_operator_on_a_missing_key_does_not_apply_and_wildcards_stay_within_one_arn_part() -> None:
    policy = _policy(_deny_unless("ArnLike", ["arn:aws:iam::*:role/writer"]))

    assert _decide(policy, None) == Decision.NEUTRAL
    assert _decide(policy, ROLE) == Decision.DENY
    assert _decide(policy, "arn:aws:iam::123456789012:role/path/writer") == Decision.NEUTRAL


def test_an_explicit_deny_wins_over_an_allow() -> None:
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}

    assert _decide(_policy(allow), ROLE) == Decision.ALLOW
    assert _decide(_policy(allow, _deny_unless("ArnNotEquals", [ADMIN])), ROLE) == Decision.DENY


def test_what_it_does_not_know_is_an_error_not_a_pass() -> None:
    with pytest.raises(NotImplementedError, match="StringLike"):
        _decide(_policy(_deny_unless("StringLike", [ROLE])), ROLE)
    with pytest.raises(NotImplementedError, match="principal"):
        _decide(_policy({**_deny_unless("ArnNotEquals", [ROLE]), "Principal": {"AWS": ROLE}}), ROLE)
