"""The video function's configuration: the ingest function's variables (the same model, endpoint, key,
tables, prefixes, retries and outage handling), plus the video ones; validated once at cold start.

`ingest_settings.py` here is a symlink to the ingest function's module (one definition of the shared
variables; `sam build` copies its content into this function's package), as are `s3_events.py` and
`sqs_retries.py`. Every variable is documented in docs/settings.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from ingest_settings import IngestSettings
from msgspec import Meta
from s3kp_core.settings import env

if TYPE_CHECKING:
    from s3kp_core.video_processing import VideoProcessingSettings

# As s3kp_core.video_decode.DEFAULT_MAX_VIDEO_PIXELS (not imported: it would load PyAV at import).
DEFAULT_MAX_VIDEO_PIXELS = 8192 * 4352


class VideoSettings(IngestSettings, frozen=True, kw_only=True):
    description: ClassVar[str] = "video"

    # Frames sampled per second of video; timestamps decide which (docs/videos.md).
    video_fps: Annotated[float, env("VIDEO_FPS"), Meta(gt=0, le=60)] = 5
    # Seconds of video per segment: each segment is one invocation.
    video_segment_seconds: Annotated[float, env("VIDEO_SEGMENT_SECONDS"), Meta(ge=1, le=3600)] = 60
    max_video_seconds: Annotated[float, env("MAX_VIDEO_SECONDS"), Meta(gt=0, le=86_400)] = 1800
    max_video_bytes: Annotated[int, env("MAX_VIDEO_BYTES"), Meta(gt=0)] = 10 * 1024**3
    max_video_pixels: Annotated[int, env("MAX_VIDEO_PIXELS"), Meta(gt=0)] = DEFAULT_MAX_VIDEO_PIXELS
    # The annotated MP4's long side, as players show it in a page (encoding it is part of each frame's cost).
    video_annotated_max_side: Annotated[int, env("VIDEO_ANNOTATED_MAX_SIDE"), Meta(ge=32, le=4096)] = 768
    # Where the planner sends segment tasks; unset: the queue the notification came from.
    segment_queue_url: Annotated[str | None, env("SEGMENT_QUEUE_URL")] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.video_fps * self.video_segment_seconds < 1:
            raise ValueError(
                "VIDEO_FPS x VIDEO_SEGMENT_SECONDS must be at least 1: a segment would sample no frame"
            )

    @property
    def fingerprint(self) -> str:
        """The ingest function's fingerprint plus VIDEO_FPS: the frames sampled change the predictions.

        Everything derived from the settings sees this one: the planner's idempotency key
        (`s3_events.work_unit`), the run token and the record (`processing_settings().fingerprint`), so
        after a VIDEO_FPS change a replayed upload is a new unit of work and `s3kp backfill --reprocess`
        tells the videos done at the old rate from the others.
        """
        return self.inference_fingerprint(video_fps=self.video_fps)

    def video_processing_settings(self) -> VideoProcessingSettings:
        """What the video flow needs (imported here: `video_processing` loads PyAV and Pillow)."""
        from s3kp_core.video_plan import exact
        from s3kp_core.video_processing import VideoProcessingSettings

        return VideoProcessingSettings(
            processing=self.processing_settings(),
            fps=exact(self.video_fps),
            segment_seconds=exact(self.video_segment_seconds),
            max_video_seconds=self.max_video_seconds,
            max_video_pixels=self.max_video_pixels,
            max_video_bytes=self.max_video_bytes,
            annotated_max_side=self.video_annotated_max_side,
        )
