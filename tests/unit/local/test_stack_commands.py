"""`s3kp up` and `s3kp down` as commands: what reaches the stack from the command line; `down` alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3kp.cli import build_parser
from s3kp.local.stack import StackOptions
from s3kp.local.stack_commands import options_from_args, run_down


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Records and logs of this test only (never the checkout's running stacks)."""
    monkeypatch.setenv("S3KP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    return tmp_path


@pytest.mark.parametrize("command", ["up", "demo"])
def test_the_commands_defaults_are_the_stacks_defaults(command: str) -> None:
    assert options_from_args(build_parser().parse_args([command])) == StackOptions()


def test_options_given_on_the_command_line_reach_the_stack(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["up", "--api-port", "3100", "--model-id", "pose/1", "--concurrency", "3", "--log-dir", str(tmp_path)]
    )

    options = options_from_args(args)

    assert (options.api_port, options.model_id, options.concurrency) == (3100, "pose/1", 3)
    assert options.log_dir == tmp_path
    assert options.aws_port == StackOptions().aws_port


def test_down_with_no_recorded_stack_says_so_and_succeeds(
    own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_down(build_parser().parse_args(["down"])) == 0
    assert capsys.readouterr().out == f"s3kp down: no running stack recorded in {own_cache / 'stacks'}\n"


def test_down_with_a_pid_that_no_stack_has_fails(own_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_down(build_parser().parse_args(["down", "--pid", "4242"])) == 1
    assert "no running stack with pid 4242" in capsys.readouterr().out
