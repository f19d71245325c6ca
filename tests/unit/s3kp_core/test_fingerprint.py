"""The fingerprint of what produces predictions: stable, and sensitive to exactly the settings that matter."""

from __future__ import annotations

from fractions import Fraction

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


# --- videos: the sampling rate ---------------------------------------------------------------------

# Computed before videos had a fingerprint of their own (commit 98f678e): every image result recorded so
# far carries one of these, and a change to them would send every image again on `--reprocess`.
IMAGE_FINGERPRINTS_RECORDED_BEFORE = {
    "b6ab83d9e565a93e": ("faces/2", BASE),
    "df25c9acc74fe303": (
        "pose/1",
        {"confidence": 0.5, "overlap": 0.3, "classes": ("person", "face"), "max_side_for_inference": 640},
    ),
}


def test_image_fingerprints_are_the_ones_recorded_before_videos_had_their_own() -> None:
    for recorded, (model_id, settings) in IMAGE_FINGERPRINTS_RECORDED_BEFORE.items():
        assert inference_fingerprint(model_id, **settings) == recorded
        assert inference_fingerprint(model_id, **settings, video_fps=None) == recorded


def test_a_video_fingerprint_covers_the_sampling_rate() -> None:
    image = inference_fingerprint("faces/2", **BASE)
    at_5 = inference_fingerprint("faces/2", **BASE, video_fps=5)
    at_2 = inference_fingerprint("faces/2", **BASE, video_fps=2)
    at_tenth = inference_fingerprint("faces/2", **BASE, video_fps=0.1)
    assert len({image, at_5, at_2, at_tenth}) == 4
    assert len(at_5) == 16
    # The other settings still count for a video.
    assert inference_fingerprint("faces/1", **BASE, video_fps=5) != at_5
    assert inference_fingerprint("faces/2", **BASE | {"confidence": 0.5}, video_fps=5) != at_5


def test_equal_sampling_rates_give_the_same_fingerprint_however_spelt() -> None:
    """The rate is taken as the exact fraction the sampler uses (video_plan.exact)."""
    five = {
        inference_fingerprint("faces/2", **BASE, video_fps=fps) for fps in (5, 5.0, "5", "5.0", Fraction(5))
    }
    tenth = {
        inference_fingerprint("faces/2", **BASE, video_fps=fps)
        for fps in (0.1, "0.1", "0.10", Fraction(1, 10))
    }
    assert len(five) == len(tenth) == 1
    assert five != tenth
