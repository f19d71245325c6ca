"""Judging a resolved IAM policy document: what one statement grants, and what a resource policy decides
for a request from a given principal (the template checks' own evaluator).

moto's `IAMPolicy` judges actions and resources, not conditions: it knows `StringEquals` only, and turns a
condition that does not hold into a deny even in a Deny statement. The bucket policy's controls are
conditions on the caller (`aws:PrincipalArn`, `aws:SecureTransport`), so this follows IAM's documented
rules for what the template uses, and raises on anything else: `Principal: "*"`; `Action` and `Resource`
with `*` and `?` wildcards (actions case-insensitive); the operators `Bool`, `StringEquals`,
`StringNotEquals`, `ArnEquals`/`ArnLike` (the same, with wildcards per colon-separated part) and their
negations; several values of one key match if any matches, several keys and operators must all hold; a
key the request lacks makes a positive operator false and a negated one true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"
    NEUTRAL = "neutral"  # no statement applies


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    # Request context keys: aws:PrincipalArn (absent for an AWS service's own request), aws:SecureTransport.
    context: Mapping[str, str] = field(default_factory=dict)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def matches_action(statement: Mapping[str, Any], action: str) -> bool:
    """Whether the statement's Action (or NotAction) covers `action`."""
    if "NotAction" in statement:
        return not any(_wildcard(p, action, ignore_case=True) for p in as_list(statement["NotAction"]))
    return any(_wildcard(p, action, ignore_case=True) for p in as_list(statement["Action"]))


def _matches_resource(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        raise NotImplementedError("NotResource")
    return any(_wildcard(pattern, resource) for pattern in as_list(statement["Resource"]))


def _arn_matches(pattern: str, arn: str) -> bool:
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    return len(pattern_parts) == len(arn_parts) == 6 and all(
        _wildcard(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True)
    )


_POSITIVE = {
    "Bool": lambda expected, actual: expected.lower() == actual.lower(),
    "StringEquals": lambda expected, actual: expected == actual,
    "ArnEquals": _arn_matches,
    "ArnLike": _arn_matches,
}
_NEGATED = {"StringNotEquals": "StringEquals", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        positive = _NEGATED.get(operator, operator)
        if positive not in _POSITIVE:
            raise NotImplementedError(f"condition operator {operator}")
        compare = _POSITIVE[positive]
        for key, expected in keys.items():
            actual = context.get(key)
            matched = actual is not None and any(compare(str(value), actual) for value in as_list(expected))
            if matched == (operator in _NEGATED):
                return False
    return True


def resource_policy_decision(document: Mapping[str, Any], request: Request) -> Decision:
    """What the resource policy says about the request: an explicit deny wins over any allow."""
    decision = Decision.NEUTRAL
    for statement in as_list(document["Statement"]):
        if statement.get("Principal") != "*":
            raise NotImplementedError(f"principal {statement.get('Principal')!r}")
        if not (matches_action(statement, request.action) and _matches_resource(statement, request.resource)):
            continue
        if not _condition_holds(statement.get("Condition", {}), request.context):
            continue
        if statement["Effect"] == "Deny":
            return Decision.DENY
        decision = Decision.ALLOW
    return decision
