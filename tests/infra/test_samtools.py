"""`python -m s3kp.samtools`: finding the interpreter `sam build` needs, and the environment SAM runs in."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3kp import samtools


def _fake_python(path: Path, reports_version: str) -> Path:
    """An executable that answers samtools' probe like an interpreter of `reports_version` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{path}"\necho "{reports_version}"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def no_pyenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    empty = tmp_path / "no-pyenv"
    monkeypatch.setattr(samtools, "PYENV_ROOTS", (empty,))
    return empty


def test_runtime_version_comes_from_the_templates_globals() -> None:
    assert samtools.runtime_version() == "3.12"


def test_an_interpreter_on_path_is_used(tmp_path: Path, no_pyenv: Path) -> None:
    python = _fake_python(tmp_path / "bin" / "python3.12", "3.12")

    assert samtools.find_interpreter("3.12", path=str(python.parent)) == python


def test_pyenv_installs_are_found_newest_patch_release_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pyenv"
    _fake_python(root / "versions" / "3.12.9" / "bin" / "python3.12", "3.12")
    newest = _fake_python(root / "versions" / "3.12.10" / "bin" / "python3.12", "3.12")
    monkeypatch.setattr(samtools, "PYENV_ROOTS", (root,))

    assert samtools.find_interpreter("3.12", path=str(tmp_path / "empty-path")) == newest


def test_a_pyenv_shim_answering_with_another_version_is_not_taken(tmp_path: Path, no_pyenv: Path) -> None:
    """GIVEN only a `python3.12` that is really 3.11 WHEN searching THEN the error says what to install."""
    shim = _fake_python(tmp_path / "shims" / "python3.12", "3.11")

    with pytest.raises(samtools.MissingInterpreter) as raised:
        samtools.find_interpreter("3.12", path=str(shim.parent))

    message = str(raised.value)
    assert "python3.12" in message
    assert "pyenv install 3.12" in message
    assert "--use-container" in message


def test_build_fails_with_exit_code_2_and_the_reason_when_no_interpreter_exists(
    tmp_path: Path, no_pyenv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))

    assert samtools.main(["build", "--build-dir", str(tmp_path / "build")]) == 2
    assert "needs python3.12" in capsys.readouterr().err
    assert not (tmp_path / "build").exists()


def test_sam_runs_offline_with_the_interpreter_first_on_path(tmp_path: Path) -> None:
    interpreter = tmp_path / "bin" / "python3.12"

    environment = samtools.sam_environment({"PATH": "/usr/bin"}, interpreter)

    assert environment["PATH"].split(":")[0] == str(tmp_path / "bin")
    assert environment["SAM_CLI_TELEMETRY"] == "0"
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["AWS_ACCESS_KEY_ID"] == "testing"


def test_a_users_own_credentials_and_region_are_kept() -> None:
    environment = samtools.sam_environment({"AWS_PROFILE": "work", "AWS_REGION": "eu-west-1"})

    assert "AWS_ACCESS_KEY_ID" not in environment
    assert environment["AWS_DEFAULT_REGION"] == "eu-west-1"
