"""The minimum-safe-version table holds for every pin, and `make audit` never calls a skipped audit clean."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from packaging.version import Version

from scripts import audit


def test_every_pin_of_an_upload_decoding_package_is_at_or_above_its_minimum_safe_version() -> None:
    assert audit.check_pins() == []


def test_every_minimum_names_the_advisories_that_set_it_or_why_none_does() -> None:
    table = audit.minimum_versions()
    assert {"pillow", "av"} <= set(table)
    for minimum in table.values():
        assert all(advisory.startswith(("GHSA-", "CVE-")) for advisory in minimum.advisories)
        if not minimum.advisories:
            # Without an advisory the minimum is the pinned release, and the entry says so.
            assert minimum.basis == "no known advisory; the current release", minimum.package
            assert all(
                audit.pins(path.read_text()).get(minimum.package) in (None, minimum.version)
                for path in audit.PIN_FILES
            ), minimum.package


def test_the_pins_that_ship_are_the_ones_read() -> None:
    """A pin the parser misses would pass the check unseen: the layer and the project both name Pillow,
    the video function and the project PyAV."""
    project, layer, video = (audit.pins(path.read_text()) for path in audit.PIN_FILES)
    assert "pillow" in project
    assert "pillow" in layer
    assert "av" in project
    assert "av" in video


def test_a_minimum_without_an_advisory_reports_its_basis() -> None:
    table = {"av": audit.Minimum("av", Version("19.0.2"), (), "no known advisory; the current release")}
    assert audit.below_minimum({"av": Version("18.0.0")}, "functions/video/requirements.txt", table) == [
        "functions/video/requirements.txt: av==18.0.0 is below the minimum safe 19.0.2 "
        "(no known advisory; the current release)"
    ]


def test_a_pin_below_its_minimum_is_reported_with_its_advisories() -> None:
    table = {"pillow": audit.Minimum("pillow", Version("13.0.0"), ("GHSA-8g5g-8vmr-9782",))}
    pinned = audit.pins('dependencies = [\n    "Pillow==12.3.0",  # old\n    "msgspec==0.23.0",\n]\n')
    assert audit.below_minimum(pinned, "pyproject.toml", table) == [
        "pyproject.toml: pillow==12.3.0 is below the minimum safe 13.0.0 (GHSA-8g5g-8vmr-9782)"
    ]


def test_a_commented_out_pin_is_not_read() -> None:
    assert audit.pins("# pillow==12.3.0\npillow==13.0.0\n") == {"pillow": Version("13.0.0")}


def test_the_environment_the_model_server_and_tests_run_in_has_the_patched_pillow() -> None:
    assert Version(metadata.version("pillow")) >= audit.minimum_versions()["pillow"].version


def test_the_environment_the_tests_and_the_local_video_worker_run_in_has_the_pinned_pyav() -> None:
    assert Version(metadata.version("av")) >= audit.minimum_versions()["av"].version


def test_a_report_that_skipped_every_package_is_not_audited() -> None:
    report = {
        "dependencies": [{"name": "pillow", "skip_reason": "Dependency not found on PyPI"}],
        "fixes": [],
    }
    code, lines = audit.summarize(report)
    assert code == 2
    assert lines[0].startswith("NOT AUDITED: 1 of 1 packages")


def test_a_known_vulnerability_fails_and_outranks_skips() -> None:
    report = {
        "dependencies": [
            {"name": "pillow", "version": "12.3.0", "vulns": [{"id": "GHSA-8g5g-8vmr-9782"}]},
            {"name": "requests", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    code, lines = audit.summarize(report)
    assert code == 1
    assert lines[0] == "VULNERABLE pillow 12.3.0: GHSA-8g5g-8vmr-9782"


def test_a_full_clean_report_passes() -> None:
    assert audit.summarize({"dependencies": [{"name": "pillow", "version": "13.0.0", "vulns": []}]})[0] == 0


def cv2_distributions() -> list[str]:
    return sorted(
        dist.metadata["Name"]
        for dist in metadata.distributions()
        if any(str(file).split("/", 1)[0] == "cv2" for file in dist.files or [])
    )


def test_one_opencv_or_none_and_the_models_need_none() -> None:
    """A second OpenCV (inference-sdk's opencv-python) once shadowed the pinned one and the fidelity suite
    ran on it. The pipelines now reproduce its warp in numpy (issue 20): the project pins no OpenCV, the
    model code imports none, and at most one (roboflow's, a dev dependency) is in the environment."""
    pinned = [name for name in audit.pins((audit.ROOT / "pyproject.toml").read_text()) if "opencv" in name]
    assert pinned == []
    assert len(cv2_distributions()) <= 1
    load_the_models = "import sys, s3kp_models.pipelines.registry; print(sorted(sys.modules))"
    imported = subprocess.run(
        [sys.executable, "-c", load_the_models],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'cv2'" not in imported.stdout


def test_inference_sdk_is_not_in_the_project_environment() -> None:
    """It pins pillow<13: it runs in .venv-clients (tests/contract/inference_sdk_remote.py)."""
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("inference-sdk")
