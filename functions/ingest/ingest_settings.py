"""The ingest function's configuration: environment variables, validated once at cold start.

Named `ingest_settings` (not `settings`) because both function directories share `sys.path` in tests and
in the offline stack. Every variable is documented in docs/settings.md; an invalid one stops the cold start
with a message naming it (and never echoing a secret's value).

This is where each default is declared: the domain's settings (`ProcessingSettings`, `InferenceSettings`)
have none of their own and are derived from this object (`processing_settings()`, `inference_settings()`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from msgspec import Meta
from s3kp_core.settings import ConfigurationError, EnvironmentSettings, env

if TYPE_CHECKING:
    from s3kp_core.inference import InferenceSettings
    from s3kp_core.inference_wiring import CircuitSettings
    from s3kp_core.processing import ProcessingSettings
    from sqs_retries import DeferralSettings

MODEL_ID_PATTERN = r"^[A-Za-z0-9_.-]+/[0-9]+$"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _skeleton(value: str) -> str:
    from s3kp_core.annotate import resolve_skeleton

    try:
        resolve_skeleton(value, keypoint_count=0)
    except ValueError as error:  # its message starts with "SKELETON=...: ", which the settings add
        raise ValueError(str(error).split(": ", 1)[-1]) from None
    return value.strip()


def _prefix(value: str) -> str:
    return value.lstrip("/")


class IngestSettings(EnvironmentSettings, frozen=True, kw_only=True):
    description: ClassVar[str] = "ingest"

    inference_url: Annotated[str, env("INFERENCE_URL", parse=_http_url)] = "https://detect.roboflow.com"
    # api_key: a Roboflow-compatible endpoint and its key; aws_iam: the stack's InferenceFunction behind
    # its Function URL, SigV4-signed with the function's role (InferenceBackend=builtin).
    inference_auth: Annotated[Literal["api_key", "aws_iam"], env("INFERENCE_AUTH")] = "api_key"
    model_id: Annotated[str, env("MODEL_ID"), Meta(pattern=MODEL_ID_PATTERN)]
    api_key_secret_arn: Annotated[str | None, env("ROBOFLOW_API_KEY_SECRET_ARN")] = None
    api_key: Annotated[str | None, env("ROBOFLOW_API_KEY", secret=True)] = None
    api_key_cache_seconds: Annotated[int, env("API_KEY_CACHE_SECONDS"), Meta(ge=0)] = 300
    confidence: Annotated[float, env("CONFIDENCE"), Meta(ge=0, le=1)] = 0.4
    overlap: Annotated[float, env("OVERLAP"), Meta(ge=0, le=1)] = 0.3
    classes: Annotated[tuple[str, ...], env("CLASSES", parse=_comma_list)] = ()
    max_side_for_inference: Annotated[int, env("MAX_SIDE_FOR_INFERENCE"), Meta(ge=32, le=8192)] = 1024
    annotated_max_side: Annotated[int, env("ANNOTATED_MAX_SIDE"), Meta(ge=32, le=16384)] = 2048
    max_object_bytes: Annotated[int, env("MAX_OBJECT_BYTES"), Meta(gt=0)] = 50 * 1024 * 1024
    max_image_pixels: Annotated[int, env("MAX_IMAGE_PIXELS"), Meta(gt=0)] = 100_000_000
    input_prefix: Annotated[str, env("INPUT_PREFIX", parse=_prefix)] = "incoming/"
    output_bucket: Annotated[str | None, env("OUTPUT_BUCKET")] = None
    output_prefix: Annotated[str, env("OUTPUT_PREFIX", parse=_prefix), Meta(min_length=1)] = "annotated/"
    predictions_prefix: Annotated[str, env("PREDICTIONS_PREFIX", parse=_prefix), Meta(min_length=1)] = (
        "predictions/"
    )
    skeleton: Annotated[str, env("SKELETON", parse=_skeleton)] = "auto"
    keypoint_draw_threshold: Annotated[float, env("KEYPOINT_DRAW_THRESHOLD"), Meta(ge=0, le=1)] = 0.3
    inference_connect_timeout: Annotated[float, env("INFERENCE_CONNECT_TIMEOUT"), Meta(gt=0)] = 3.05
    inference_read_timeout: Annotated[float, env("INFERENCE_READ_TIMEOUT"), Meta(gt=0)] = 20.0
    inference_max_attempts: Annotated[int, env("INFERENCE_MAX_ATTEMPTS"), Meta(ge=1, le=10)] = 4
    results_table: Annotated[str, env("RESULTS_TABLE"), Meta(min_length=1)]
    idempotency_table: Annotated[str, env("IDEMPOTENCY_TABLE"), Meta(min_length=1)]
    idempotency_ttl_seconds: Annotated[int, env("IDEMPOTENCY_TTL_SECONDS"), Meta(ge=60)] = 86_400
    max_receive_count: Annotated[int, env("MAX_RECEIVE_COUNT"), Meta(ge=1)] = 3
    # The EventBridge bus (name or ARN) result events go to; unset: no events.
    results_event_bus: Annotated[str | None, env("RESULTS_EVENT_BUS")] = None
    # A failed message comes back after half to all of base × 2^(receive − 1) seconds, at most max.
    retry_base_delay_seconds: Annotated[float, env("RETRY_BASE_DELAY_SECONDS"), Meta(ge=0, le=3600)] = 15
    retry_max_delay_seconds: Annotated[float, env("RETRY_MAX_DELAY_SECONDS"), Meta(ge=1, le=43_200)] = 300
    # Endpoint outages (docs/ingest.md): the whole stack probes a failing endpoint once per interval; a
    # waiting message is deferred up to the cap at a time, for as long as the queue would keep it.
    circuit_probe_seconds: Annotated[float, env("CIRCUIT_PROBE_SECONDS"), Meta(ge=1, le=900)] = 15
    outage_max_defer_seconds: Annotated[float, env("OUTAGE_MAX_DEFER_SECONDS"), Meta(ge=1, le=900)] = 60
    message_retention_seconds: Annotated[int, env("MESSAGE_RETENTION_SECONDS"), Meta(ge=60, le=1_209_600)] = (
        345_600
    )
    # Records of one SQS batch processed at once (docs/ingest.md, "Records in parallel"), so their waits
    # for the endpoint overlap. At most 10: a batch holds at most 10 messages (the template's BatchSize),
    # and botocore pools 10 connections per client.
    record_concurrency: Annotated[int, env("RECORD_CONCURRENCY"), Meta(ge=1, le=10)] = 10

    def __post_init__(self) -> None:
        if self.inference_auth == "api_key" and not (self.api_key_secret_arn or self.api_key):
            raise ValueError("no API key source: set ROBOFLOW_API_KEY_SECRET_ARN or ROBOFLOW_API_KEY")
        # Even with a separate OUTPUT_BUCKET (the template sets it to the upload bucket), nested prefixes
        # are one misconfigured notification away from a loop: refuse them outright.
        if self.input_prefix.startswith(self.output_prefix) or (
            self.input_prefix and self.output_prefix.startswith(self.input_prefix)
        ):
            raise ValueError(
                "INPUT_PREFIX and OUTPUT_PREFIX must not contain each other: the function "
                "would trigger itself"
            )

    @property
    def fingerprint(self) -> str:
        """The model and the inference settings that change predictions (recorded on every result)."""
        return self.inference_fingerprint()

    def inference_fingerprint(self, *, video_fps: float | None = None) -> str:
        """This function's model and inference settings, plus a video's sampling rate when given."""
        from s3kp_core.fingerprint import inference_fingerprint

        return inference_fingerprint(
            self.model_id,
            confidence=self.confidence,
            overlap=self.overlap,
            classes=self.classes,
            max_side_for_inference=self.max_side_for_inference,
            video_fps=video_fps,
        )

    def processing_settings(self) -> ProcessingSettings:
        """What the per-object flow needs (imported here: `processing` pulls in Pillow)."""
        from s3kp_core.processing import ProcessingSettings

        return ProcessingSettings(
            model_id=self.model_id,
            fingerprint=self.fingerprint,
            input_prefix=self.input_prefix,
            output_prefix=self.output_prefix,
            predictions_prefix=self.predictions_prefix,
            output_bucket=self.output_bucket,
            max_object_bytes=self.max_object_bytes,
            max_image_pixels=self.max_image_pixels,
            max_side_for_inference=self.max_side_for_inference,
            annotated_max_side=self.annotated_max_side,
            skeleton=self.skeleton,
            keypoint_draw_threshold=self.keypoint_draw_threshold,
        )

    def inference_settings(self, api_key: str | None) -> InferenceSettings:
        """What the inference client needs; the key comes from `resolve_api_key` (it may rotate), None
        with INFERENCE_AUTH aws_iam."""
        from s3kp_core.inference import InferenceSettings

        return InferenceSettings(
            base_url=self.inference_url,
            model_id=self.model_id,
            api_key=api_key,
            confidence=self.confidence,
            overlap=self.overlap,
            classes=self.classes,
            connect_timeout=self.inference_connect_timeout,
            read_timeout=self.inference_read_timeout,
            max_attempts=self.inference_max_attempts,
            auth=self.inference_auth,
            max_connections=self.record_concurrency,
        )

    def circuit_settings(self) -> CircuitSettings:
        """The endpoint's circuit (`s3kp_core.inference_wiring`): the video function derives the same
        endpoint and table from the same variables, so both functions share one circuit."""
        from s3kp_core.inference_wiring import CircuitSettings

        return CircuitSettings(
            endpoint=f"{self.inference_url}/{self.model_id}",
            table=self.idempotency_table,
            probe_interval=self.circuit_probe_seconds,
            probe_lease=self.inference_connect_timeout + self.inference_read_timeout,
        )

    def deferral_settings(self) -> DeferralSettings:
        """When a message is deferred rather than failed (`sqs_retries`, which this function's package
        and the video function's both hold)."""
        from sqs_retries import DeferralSettings

        return DeferralSettings(
            in_progress_unknown=self.retry_max_delay_seconds,
            probe_interval=self.circuit_probe_seconds,
            max_outage_defer=self.outage_max_defer_seconds,
            retention=self.message_retention_seconds,
        )


def resolve_api_key(settings: IngestSettings) -> str | None:
    """The inference API key from the first configured source, cached by Powertools Parameters; None
    with INFERENCE_AUTH aws_iam (requests are signed, no key is read).

    Secrets Manager values may be the key itself or JSON `{"api_key": "..."}`. The key is registered
    with the redactor so it never reaches a log line, an exception text or a stored reason.
    """
    from aws_lambda_powertools.utilities import parameters
    from s3kp_core.redact import register_secret

    if settings.inference_auth == "aws_iam":
        return None
    if settings.api_key_secret_arn:
        raw = str(parameters.get_secret(settings.api_key_secret_arn, max_age=settings.api_key_cache_seconds))
        key = _key_from_secret_string(raw, source="ROBOFLOW_API_KEY_SECRET_ARN")
    else:
        key = (settings.api_key or "").strip()
    if not key:
        raise ConfigurationError("the configured API key source holds an empty key")
    register_secret(key)
    return key


def _key_from_secret_string(raw: str, *, source: str) -> str:
    text = raw.strip()
    if not text.startswith("{"):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{source}: the secret looks like JSON but does not parse") from None
    key = document.get("api_key") if isinstance(document, dict) else None
    if not isinstance(key, str):
        raise ConfigurationError(f'{source}: a JSON secret must hold {{"api_key": "..."}}')
    return key.strip()
