"""A stand-in keypoint model for HTTP-layer tests: fixed detections, and a record of every call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from s3kp_core.results import Keypoint
from s3kp_models.pipelines.base import Detection, ModelInfo, RGBImage

from s3kp.model_server.app import create_app

INFO = ModelInfo(
    model_id="fake/1",
    description="two classes, two keypoints",
    class_names=("cat", "dog"),
    keypoint_names=("head", "tail"),
    skeleton=((0, 1),),
    input_width=64,
    input_height=48,
)


def detection(class_name: str, confidence: float, keypoint_confidences: tuple[float, float]) -> Detection:
    return Detection(
        x=20.0,
        y=10.0,
        width=8.0,
        height=6.0,
        confidence=confidence,
        class_name=class_name,
        class_id=INFO.class_names.index(class_name),
        keypoints=tuple(
            Keypoint(x=18.0 + 4 * slot, y=10.0, confidence=c, class_id=slot, name=INFO.keypoint_names[slot])
            for slot, c in enumerate(keypoint_confidences)
        ),
    )


DEFAULT_DETECTIONS = (
    detection("cat", 0.9, (0.95, 0.2)),
    detection("dog", 0.8, (0.7, 0.6)),
    detection("cat", 0.5, (0.5, 0.5)),
)


@dataclass
class FakePipeline:
    info: ModelInfo = INFO
    detections: tuple[Detection, ...] = DEFAULT_DETECTIONS
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def predict(
        self, image: RGBImage, *, confidence: float, iou_threshold: float, max_detections: int
    ) -> list[Detection]:
        self.calls.append(
            {
                "shape": image.shape,
                "dtype": str(image.dtype),
                "confidence": confidence,
                "iou_threshold": iou_threshold,
                "max_detections": max_detections,
            }
        )
        if self.error is not None:
            raise self.error
        return [d for d in self.detections if d.confidence >= confidence][:max_detections]

    @property
    def last_call(self) -> dict[str, Any]:
        return self.calls[-1]


def client_for(pipeline: FakePipeline | None = None, **app_options: Any) -> tuple[TestClient, FakePipeline]:
    """A TestClient on `create_app` serving `pipeline` as `fake/1` (server errors become 500 responses)."""
    pipeline = pipeline or FakePipeline()
    app = create_app({"fake/1": pipeline}, **app_options)
    # A loopback base URL: the server refuses any other Host (TestClient's default is "testserver").
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False), pipeline
