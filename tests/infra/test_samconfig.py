"""samconfig.toml gives `sam build` / `sam deploy` working defaults for this template."""

from __future__ import annotations

import tomllib
from typing import Any

from tests.infra.iac_tools import ROOT


def _config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def test_default_environment_deploys_without_prompts_except_the_changeset() -> None:
    default = _config()["default"]
    deploy = default["deploy"]["parameters"]

    assert default["global"]["parameters"]["stack_name"]
    assert default["global"]["parameters"]["region"]
    assert deploy["capabilities"] == "CAPABILITY_IAM", "the functions' roles are created by the stack"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True


def test_no_parameter_override_is_committed_so_guided_deploy_asks_for_the_model(
    template: dict[str, Any],
) -> None:
    deploy = _config()["default"]["deploy"]["parameters"]

    assert "parameter_overrides" not in deploy
    assert "Default" not in template["Parameters"]["ModelId"]
