"""The per-object flow with fakes: every outcome ends in exactly one recorded state with a reason."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from PIL import Image
from s3kp_core import errors
from s3kp_core.objects_s3 import write_failure
from s3kp_core.ordering import event_order
from s3kp_core.processing import (
    Collaborators,
    ObjectEvent,
    annotated_key,
    process_object,
)
from s3kp_core.results import Keypoint, Prediction, Reason, ResultRecord, SourceObject, Status, result_id_for

from tests.unit.derived_settings import processing_settings
from tests.unit.s3kp_core.fakes import (
    FakeObjectStore,
    FakePredictor,
    InMemoryResultsStore,
    SteppingClock,
    fixed_now,
)

BUCKET = "uploads"
KEY = "incoming/people/party photo.png"
SETTINGS = processing_settings(model_id="faces/1", max_side_for_inference=400, annotated_max_side=600)


def png(width: int = 800, height: int = 600) -> bytes:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# A face found at (100, 50) on the 400x300 image the endpoint received, i.e. (200, 100) in the original.
SENT_FACE = Prediction(
    x=100,
    y=50,
    width=40,
    height=40,
    confidence=0.9,
    class_name="face",
    class_id=0,
    keypoints=(
        Keypoint(x=90, y=45, confidence=0.95, class_id=0, name="right_eye"),
        Keypoint(x=110, y=45, confidence=0.95, class_id=1, name="left_eye"),
    ),
)


class Pipeline:
    """The flow wired to fakes, with one object uploaded."""

    def __init__(self, data: bytes | None = None, key: str = KEY, **predictor_options) -> None:
        self.objects = FakeObjectStore({(BUCKET, key): png() if data is None else data})
        self.predictor = FakePredictor(**({"predictions": (SENT_FACE,)} | predictor_options))
        self.results = InMemoryResultsStore()
        self.deps = Collaborators(
            objects=self.objects,
            predictor=self.predictor,
            results=self.results,
            clock=SteppingClock(),
            now=fixed_now,
        )
        self.key = key

    def run(
        self,
        *,
        size: int | None = None,
        sequencer: str | None = None,
        final_attempt: bool = False,
        outage_deferrable: bool = False,
        **kw,
    ):
        source = SourceObject(bucket=BUCKET, key=self.key, etag="etag-1", size=size, sequencer=sequencer)
        event = ObjectEvent(source=source, final_attempt=final_attempt, outage_deferrable=outage_deferrable)
        return process_object(event, settings=kw.pop("settings", SETTINGS), deps=self.deps, **kw)


def test_success_records_predictions_in_original_pixels_and_writes_the_annotated_copy() -> None:
    pipeline = Pipeline()

    outcome = pipeline.run(deadline=1234.5)

    record = pipeline.results.only()
    assert outcome.record == record
    assert not outcome.stale
    assert record.status is Status.SUCCEEDED
    assert record.reason is None
    assert record.result_id == result_id_for(BUCKET, KEY)
    assert (record.image.width, record.image.height) == (800, 600)
    (face,) = record.predictions
    assert (face.x, face.y, face.width, face.height) == (200, 100, 80, 80)
    assert [(k.x, k.y) for k in face.keypoints] == [(180, 90), (220, 90)]
    assert (record.counts, record.detections, record.keypoints) == ({"face": 1}, 1, 2)
    assert record.annotated is not None
    assert record.annotated.bucket == BUCKET
    assert re.fullmatch(r"annotated/people/party photo\.png\.[0-9a-f]{16}\.jpg", record.annotated.key)
    assert pipeline.predictor.calls[0][1] == 1234.5  # the deadline reaches the client
    assert outcome.bytes_sent == len(pipeline.predictor.calls[0][0]) > 0
    for stage in ("download", "decode", "resize", "encode", "inference", "parse", "annotate", "put", "total"):
        assert record.timings_ms[stage] >= 0, stage


def test_the_endpoint_receives_a_jpeg_no_larger_than_the_configured_side() -> None:
    pipeline = Pipeline()
    pipeline.run()
    sent = Image.open(io.BytesIO(pipeline.predictor.calls[0][0]))
    assert (sent.format, sent.size) == ("JPEG", (400, 300))


def test_annotated_copy_is_a_jpeg_at_the_annotated_size_linking_back_to_its_source() -> None:
    pipeline = Pipeline()
    pipeline.run()

    put = pipeline.objects.puts[(BUCKET, pipeline.results.only().annotated.key)]
    assert put.content_type == "image/jpeg"
    assert put.metadata == {
        "source-bucket": BUCKET,
        "source-key": KEY,
        "result-id": result_id_for(BUCKET, KEY),
    }
    drawn = Image.open(io.BytesIO(put.body)).convert("RGB")
    assert drawn.size == (600, 450)
    # Keypoints land at original (180, 90) -> annotated scale 0.75 -> (135, 67.5): pixels changed there.
    original = Image.open(io.BytesIO(png())).convert("RGB").resize((600, 450))
    assert drawn.getpixel((135, 67)) != original.getpixel((135, 67))


def test_annotated_copy_goes_to_the_output_bucket_when_one_is_configured() -> None:
    pipeline = Pipeline()
    settings = processing_settings(model_id="faces/1", output_bucket="results-bucket")
    pipeline.run(settings=settings)
    annotated = pipeline.results.only().annotated
    assert annotated.bucket == "results-bucket"
    assert ("results-bucket", annotated.key) in pipeline.objects.puts


@pytest.mark.parametrize(
    ("source_key", "expected"),
    [
        ("incoming/a.png", "annotated/a.png.T.jpg"),
        ("incoming/deep/dir/b.JPEG", "annotated/deep/dir/b.JPEG.T.jpg"),
        ("incoming/no-extension", "annotated/no-extension.T.jpg"),
        ("incoming/.hidden", "annotated/.hidden.T.jpg"),
        ("incoming/été 📷.webp", "annotated/été 📷.webp.T.jpg"),
        ("incoming/a//x.jpg", "annotated/a//x.jpg.T.jpg"),
        ("incoming/a/./x.jpg", "annotated/a/./x.jpg.T.jpg"),
    ],
)
def test_annotated_key_keeps_the_whole_relative_key_and_the_event_token(
    source_key: str, expected: str
) -> None:
    assert annotated_key(source_key, SETTINGS, "T") == expected


def test_look_alike_source_keys_get_distinct_drawings() -> None:
    """`x.png` and `x.jpg` (same stem), `a//x.jpg`, `a/./x.jpg` and `a/x.jpg` (same path once normalised)
    are five objects: five drawings, none overwriting another."""
    keys = ["incoming/x.png", "incoming/x.jpg", "incoming/a//x.jpg", "incoming/a/./x.jpg", "incoming/a/x.jpg"]
    drawings = set()
    for key in keys:
        pipeline = Pipeline(key=key)
        pipeline.run(sequencer="00A1")
        drawings.add(pipeline.results.only().annotated.key)
    assert len(drawings) == len(keys)


class RacingResultsStore(InMemoryResultsStore):
    """The early stale check sees nothing (a newer event is still in flight), the guarded write decides."""

    def stored_state(self, result_id: str) -> None:
        return None


def test_a_stale_event_that_loses_the_guarded_write_removes_its_drawing_and_leaves_the_newer_one() -> None:
    pipeline = Pipeline()
    pipeline.results = RacingResultsStore()
    pipeline.deps = dataclasses.replace(pipeline.deps, results=pipeline.results)
    pipeline.run(sequencer="00B2")
    newer = pipeline.results.only()

    outcome = pipeline.run(sequencer="00B1")  # older, but it gets as far as drawing

    assert outcome.stale
    assert len(pipeline.predictor.calls) == 2
    assert pipeline.results.only() == newer
    (deleted,) = pipeline.objects.deleted
    assert deleted != (newer.annotated.bucket, newer.annotated.key)
    assert list(pipeline.objects.puts) == [(newer.annotated.bucket, newer.annotated.key)]


def test_each_event_of_a_key_has_its_own_drawing_and_its_result_points_at_it() -> None:
    pipeline = Pipeline()
    pipeline.run(sequencer="00C1")
    first = pipeline.results.only().annotated.key
    pipeline.run(sequencer="00C2")
    second = pipeline.results.only().annotated.key

    assert first != second
    assert (BUCKET, second) in pipeline.objects.puts


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("annotated/people/x.jpg", errors.OUTPUT_PREFIX),
        ("predictions/abc/def.json", errors.OUTPUT_PREFIX),
        ("elsewhere/x.jpg", errors.OUTSIDE_INPUT_PREFIX),
    ],
)
def test_objects_outside_the_input_or_among_our_outputs_are_skipped_without_work(key: str, code: str) -> None:
    pipeline = Pipeline(key=key)

    pipeline.run()

    record = pipeline.results.only()
    assert record.status is Status.SKIPPED
    assert record.reason.code == code
    assert pipeline.objects.gets == []
    assert pipeline.predictor.calls == []
    assert pipeline.objects.puts == {}


def test_when_the_output_bucket_is_the_source_bucket_inputs_are_still_processed() -> None:
    """The template points OUTPUT_BUCKET at the upload bucket: only the output prefixes are ours."""
    pipeline = Pipeline()
    pipeline.run(settings=processing_settings(model_id="faces/1", output_bucket=BUCKET))
    assert pipeline.results.only().status is Status.SUCCEEDED


def test_an_output_key_in_another_bucket_than_the_output_bucket_is_not_mistaken_for_ours() -> None:
    pipeline = Pipeline(key="annotated/x.png")
    settings = processing_settings(model_id="faces/1", output_bucket="results-bucket", input_prefix="")
    pipeline.run(settings=settings)
    assert pipeline.results.only().status is Status.SUCCEEDED


def test_a_zero_byte_object_fails_as_empty_before_download() -> None:
    pipeline = Pipeline(data=b"")
    pipeline.run(size=0)
    record = pipeline.results.only()
    assert (record.status, record.reason.code) == (Status.FAILED, errors.OBJECT_EMPTY)
    assert pipeline.objects.gets == []


def test_an_object_over_the_size_limit_fails_before_download() -> None:
    pipeline = Pipeline()
    pipeline.run(size=SETTINGS.max_object_bytes + 1)
    record = pipeline.results.only()
    assert (record.status, record.reason.code) == (Status.FAILED, errors.OBJECT_TOO_LARGE)
    assert pipeline.objects.gets == []


def test_without_a_size_in_the_event_the_object_is_measured_first() -> None:
    pipeline = Pipeline(data=b"x" * 200)
    pipeline.run(settings=processing_settings(model_id="faces/1", max_object_bytes=100))
    assert pipeline.results.only().reason.code == errors.OBJECT_TOO_LARGE


def test_bytes_that_are_not_an_image_fail_as_undecodable_without_inference() -> None:
    pipeline = Pipeline(data=b"%PDF-1.4 not an image")
    pipeline.run()
    record = pipeline.results.only()
    assert (record.status, record.reason.code) == (Status.FAILED, errors.IMAGE_UNDECODABLE)
    assert pipeline.predictor.calls == []


def test_a_vanished_object_is_skipped() -> None:
    pipeline = Pipeline()
    pipeline.objects.objects.clear()
    pipeline.run()
    assert pipeline.results.only().reason.code == errors.OBJECT_MISSING


def raise_(error: Exception):
    def behaviour() -> None:
        raise error

    return behaviour


def test_a_permanent_inference_error_is_recorded_as_failed_with_its_reason() -> None:
    pipeline = Pipeline(
        behaviour=raise_(errors.PermanentError(errors.INFERENCE_UNAUTHORIZED, "401: bad key"))
    )
    pipeline.run()
    record = pipeline.results.only()
    assert (record.status, record.reason.code) == (Status.FAILED, errors.INFERENCE_UNAUTHORIZED)
    assert record.image is not None  # what was learnt before the failure is kept
    assert pipeline.objects.puts == {}


class RefusingObjectStore(FakeObjectStore):
    """Reads like the fake; S3 answers every write with `code`/`status`, translated as S3ObjectStore does."""

    def __init__(self, objects: dict[tuple[str, str], bytes], code: str, status: int) -> None:
        super().__init__(objects)
        self.response = {
            "Error": {"Code": code, "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    def put(self, bucket: str, key: str, body: bytes, **_: object) -> None:
        raise write_failure(ClientError(self.response, "PutObject"), f"s3://{bucket}/{key}")


def test_an_annotated_copy_s3_refuses_ends_the_object_failed_with_the_reason_not_retried() -> None:
    """GIVEN S3 refuses the annotated copy (403 AccessDenied, as a bucket policy would) THEN the object is
    recorded `failed` with `output_write_refused` on this delivery, and nothing is raised for a retry."""
    pipeline = Pipeline()
    pipeline.deps = dataclasses.replace(
        pipeline.deps, objects=RefusingObjectStore(pipeline.objects.objects, "AccessDenied", 403)
    )

    outcome = pipeline.run()

    record = pipeline.results.only()
    assert outcome.record == record
    assert (record.status, record.reason.code) == (Status.FAILED, errors.OUTPUT_WRITE_REFUSED)
    assert "AccessDenied (HTTP 403)" in record.reason.message
    assert record.annotated is None


def test_an_annotated_copy_s3_throttles_is_retried() -> None:
    pipeline = Pipeline()
    pipeline.deps = dataclasses.replace(
        pipeline.deps, objects=RefusingObjectStore(pipeline.objects.objects, "SlowDown", 503)
    )

    with pytest.raises(errors.TransientError, match="output_write_failed"):
        pipeline.run()

    assert pipeline.results.items == {}


def test_a_transient_error_is_raised_and_records_nothing() -> None:
    pipeline = Pipeline(behaviour=raise_(errors.TransientError(errors.INFERENCE_UNAVAILABLE, "503 x4")))
    with pytest.raises(errors.TransientError):
        pipeline.run()
    assert pipeline.results.items == {}


def test_on_the_last_delivery_a_transient_error_is_recorded_and_still_raised() -> None:
    """The message must still reach the DLQ (for a redrive), but the object must not stay without state."""
    pipeline = Pipeline(behaviour=raise_(errors.TransientError(errors.OBJECT_READ_FAILED, "S3 answered 503")))
    with pytest.raises(errors.TransientError):
        pipeline.run(final_attempt=True)
    record = pipeline.results.only()
    assert (record.status, record.reason.code) == (Status.FAILED, errors.OBJECT_READ_FAILED)
    assert record.reason.message == "S3 answered 503"


def test_an_unavailable_endpoint_on_the_last_delivery_records_nothing_while_the_message_can_wait() -> None:
    """Issue 19: the handler defers such a message instead of failing it; no `failed` state may be written
    for an upload that is still waiting for the endpoint."""
    unavailable = errors.EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable")
    pipeline = Pipeline(behaviour=raise_(unavailable))

    with pytest.raises(errors.EndpointUnavailable):
        pipeline.run(final_attempt=True, outage_deferrable=True)

    assert pipeline.results.items == {}


def test_an_unavailable_endpoint_past_the_queues_retention_is_recorded_on_the_last_delivery() -> None:
    unavailable = errors.EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable")
    pipeline = Pipeline(behaviour=raise_(unavailable))

    with pytest.raises(errors.EndpointUnavailable):
        pipeline.run(final_attempt=True, outage_deferrable=False)

    assert pipeline.results.only().reason == Reason(
        code=errors.INFERENCE_UNAVAILABLE, message="inference endpoint unreachable"
    )


def test_an_unexpected_error_on_the_last_delivery_is_recorded_as_internal_error() -> None:
    pipeline = Pipeline(behaviour=raise_(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        pipeline.run(final_attempt=True)
    assert pipeline.results.only().reason.code == "internal_error"


def test_a_redrive_after_a_recorded_failure_can_succeed() -> None:
    pipeline = Pipeline(behaviour=raise_(errors.TransientError(errors.INFERENCE_UNAVAILABLE, "down")))
    with pytest.raises(errors.TransientError):
        pipeline.run(final_attempt=True, sequencer="00A1")
    pipeline.predictor.behaviour = None

    pipeline.run(sequencer="00A1")

    assert pipeline.results.only().status is Status.SUCCEEDED


@pytest.mark.parametrize(
    "failure", [errors.TransientError(errors.INFERENCE_UNAVAILABLE, "down"), RuntimeError("boom")]
)
def test_a_last_delivery_failure_never_replaces_the_result_this_same_event_already_stored(
    failure: Exception,
) -> None:
    """GIVEN the event's result is stored (a retry after a failed publish or a crash after the write, or a
    backfill replay, which takes the stored order) WHEN its last delivery fails THEN the stored result stays
    (and with it its drawing): the failure has nothing newer to say about the object."""
    pipeline = Pipeline()
    pipeline.run(sequencer="00A1")
    good = pipeline.results.only()
    pipeline.predictor.behaviour = raise_(failure)

    with pytest.raises(type(failure)):
        pipeline.run(final_attempt=True, sequencer="00A1")

    assert pipeline.results.only() == good


def test_a_stale_event_does_no_work_and_keeps_the_newer_result() -> None:
    pipeline = Pipeline()
    pipeline.run(sequencer="00B2")
    newer = pipeline.results.only()

    outcome = pipeline.run(sequencer="00B1")

    assert outcome.stale
    assert outcome.record is None
    assert pipeline.results.only() == newer
    assert len(pipeline.predictor.calls) == 1


def test_reprocessing_keeps_the_first_creation_time() -> None:
    """GIVEN a result created in 2020 WHEN a newer event is processed THEN only updated_at moves."""
    pipeline = Pipeline()
    created = datetime(2020, 1, 1, tzinfo=UTC)
    earlier = ResultRecord(
        result_id=result_id_for(BUCKET, KEY),
        status=Status.FAILED,
        source=SourceObject(bucket=BUCKET, key=KEY),
        model_id="faces/1",
        created_at=created,
        updated_at=created,
    )
    pipeline.results.save(earlier, order=event_order("01", None, fixed_now()))

    pipeline.run(sequencer="02")

    record = pipeline.results.only()
    assert (record.created_at, record.updated_at) == (created, fixed_now())


# --- result events ---------------------------------------------------------------------------------


class RecordingPublisher:
    def __init__(self, failure: Exception | None = None) -> None:
        self.details: list = []
        self.failure = failure

    def publish(self, detail) -> None:
        if self.failure is not None:
            raise self.failure
        self.details.append(detail)


def with_events(pipeline: Pipeline, publisher: RecordingPublisher) -> Pipeline:
    pipeline.deps = dataclasses.replace(pipeline.deps, events=publisher)
    return pipeline


def test_the_event_is_published_after_the_result_is_recorded_with_the_fingerprint() -> None:
    publisher = RecordingPublisher()
    pipeline = with_events(Pipeline(), publisher)

    outcome = pipeline.run(settings=dataclasses.replace(SETTINGS, fingerprint="fp-1"))

    (detail,) = publisher.details
    assert outcome.event_published
    assert pipeline.results.only().fingerprint == "fp-1"
    assert (detail.status, detail.fingerprint, detail.detections) == (Status.SUCCEEDED, "fp-1", 1)
    assert detail.result_id == pipeline.results.only().result_id


def test_a_publisher_that_keeps_failing_leaves_the_result_recorded_and_raises_transient() -> None:
    failure = errors.TransientError(errors.EVENT_PUBLISH_FAILED, "bus unavailable")
    pipeline = with_events(Pipeline(), RecordingPublisher(failure))

    with pytest.raises(errors.TransientError) as raised:
        pipeline.run()

    assert raised.value.code == errors.EVENT_PUBLISH_FAILED
    assert pipeline.results.only().status is Status.SUCCEEDED  # never rolled back


def test_the_failure_recorded_on_the_last_delivery_is_published_too() -> None:
    publisher = RecordingPublisher()
    pipeline = with_events(
        Pipeline(behaviour=raise_(errors.TransientError(errors.INFERENCE_UNAVAILABLE, "503"))), publisher
    )

    with pytest.raises(errors.TransientError):
        pipeline.run(final_attempt=True)

    (detail,) = publisher.details
    assert (detail.status, detail.reason.code) == (Status.FAILED, "inference_unavailable")


def test_a_replay_takes_the_stored_order_so_it_replaces_the_result_of_an_older_event() -> None:
    """Backfill/reprocess: the stored result came from an S3 event with a sequencer; the replay has none.
    It must still replace that result (e.g. under a new model), not be refused as stale."""
    pipeline = Pipeline()
    pipeline.run(sequencer="00FF")
    source = SourceObject(bucket=BUCKET, key=KEY, etag="etag-1")

    outcome = process_object(
        ObjectEvent(source=source, event_time=datetime(2020, 1, 1, tzinfo=UTC), replay=True),
        settings=dataclasses.replace(SETTINGS, model_id="faces/2", fingerprint="new"),
        deps=pipeline.deps,
    )

    assert not outcome.stale
    assert (pipeline.results.only().model_id, pipeline.results.only().fingerprint) == ("faces/2", "new")
    assert pipeline.results.items[result_id_for(BUCKET, KEY)][1] == event_order("00FF", None, fixed_now())


def test_a_replay_reads_the_keys_current_object_by_etag_never_a_listed_version_by_id() -> None:
    """On a versioned bucket the listed version may have been replaced since the listing; the replay takes
    the stored order, so it must describe the current object (a mismatched ETag makes it stale)."""
    pipeline = Pipeline()
    listed = SourceObject(bucket=BUCKET, key=KEY, version_id="v1", etag="etag-1")

    process_object(ObjectEvent(source=listed, replay=True), settings=SETTINGS, deps=pipeline.deps)

    assert pipeline.objects.gets == [(BUCKET, KEY, None, "etag-1")]


def test_a_replay_of_an_object_replaced_since_the_listing_records_nothing() -> None:
    pipeline = Pipeline()
    pipeline.run(sequencer="00FF")
    before = pipeline.results.only()
    replaced = SourceObject(bucket=BUCKET, key=KEY, etag="an-etag-the-object-no-longer-has")
    pipeline.objects.objects.clear()  # gone (or replaced: the store answers both as object_missing)

    outcome = process_object(ObjectEvent(source=replaced, replay=True), settings=SETTINGS, deps=pipeline.deps)

    assert outcome.stale
    assert pipeline.results.only() == before
