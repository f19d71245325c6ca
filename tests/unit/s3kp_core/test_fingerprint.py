"""The fingerprint of what produces predictions: stable, and sensitive to exactly the settings that matter."""

from __future__ import annotations

from s3kp_core.fingerprint import inference_fingerprint

BASE = {"confidence": 0.4, "overlap": 0.3, "classes": (), "max_side_for_inference": 1024}


def test_equal_settings_give_the_same_short_hex_digest_however_spelt() -> None:
    one = inference_fingerprint("faces/2", **BASE)
    assert len(one) == 16
    assert int(one, 16) >= 0
    assert (
        inference_fingerprint("faces/2", **BASE | {"confidence": 0.40, "max_side_for_inference": 1024.0})
        == one
    )
    assert inference_fingerprint("faces/2", **BASE | {"classes": ["b", "a ", "a"]}) == inference_fingerprint(
        "faces/2", **BASE | {"classes": ("a", "b")}
    )
    assert inference_fingerprint("faces/2", **BASE | {"classes": ["", " "]}) == one


def test_each_setting_that_changes_predictions_changes_the_fingerprint() -> None:
    base = inference_fingerprint("faces/2", **BASE)
    variants = [
        inference_fingerprint("faces/1", **BASE),
        inference_fingerprint("faces/2", **BASE | {"confidence": 0.5}),
        inference_fingerprint("faces/2", **BASE | {"overlap": 0.5}),
        inference_fingerprint("faces/2", **BASE | {"classes": ("face",)}),
        inference_fingerprint("faces/2", **BASE | {"max_side_for_inference": 640}),
    ]
    assert len({base, *variants}) == 6


def test_the_ingest_settings_fingerprint_is_this_function_of_its_variables() -> None:
    from ingest_settings import IngestSettings

    environ = {"MODEL_ID": "pose/1", "ROBOFLOW_API_KEY": "k", "RESULTS_TABLE": "r", "IDEMPOTENCY_TABLE": "i",
               "CONFIDENCE": "0.5", "CLASSES": "person", "SKELETON": "coco17"}  # fmt: skip
    settings = IngestSettings.from_environment(environ)
    assert settings.fingerprint == inference_fingerprint(
        "pose/1", confidence=0.5, overlap=0.3, classes=("person",), max_side_for_inference=1024
    )
    # Drawing settings do not change predictions, so they leave the fingerprint alone.
    assert IngestSettings.from_environment(
        environ | {"SKELETON": "none", "ANNOTATED_MAX_SIDE": "512"}
    ).fingerprint == (settings.fingerprint)
