"""Specification of the API function's configuration, validated at cold start."""

from __future__ import annotations

import pytest
from api_settings import ApiSettings
from s3kp_core.settings import ConfigurationError

BASE = {"RESULTS_TABLE": "results", "CURSOR_SECRET": "0123456789abcdef"}


def test_defaults() -> None:
    settings = ApiSettings.from_environment(BASE)
    assert settings.results_table == "results"
    assert settings.presign_expiry_seconds == 300
    assert settings.cors_allow_origin == "*"


def test_a_secret_arn_is_enough_for_the_cursor_key() -> None:
    environ = {"RESULTS_TABLE": "results", "CURSOR_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:c"}
    assert ApiSettings.from_environment(environ).cursor_secret is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CURSOR_SECRET": "0123456789abcdef"}, "RESULTS_TABLE"),
        ({"RESULTS_TABLE": "results"}, "CURSOR_SECRET"),
        ({**BASE, "PRESIGN_EXPIRY_SECONDS": "0"}, "PRESIGN_EXPIRY_SECONDS"),
        ({**BASE, "PRESIGN_EXPIRY_SECONDS": "86400"}, "PRESIGN_EXPIRY_SECONDS"),
        ({**BASE, "PRESIGN_EXPIRY_SECONDS": "soon"}, "PRESIGN_EXPIRY_SECONDS"),
    ],
)
def test_invalid_settings_fail_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        ApiSettings.from_environment(environ)


def test_a_short_cursor_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="CURSOR_SECRET") as raised:
        ApiSettings.from_environment({"RESULTS_TABLE": "results", "CURSOR_SECRET": "tiny-s3cr3t"})
    assert "tiny-s3cr3t" not in str(raised.value)
