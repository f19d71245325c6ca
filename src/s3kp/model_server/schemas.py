"""Wire shapes: the Roboflow response, the inference-sdk v1 request and registry, our model catalogue.

The response is built as plain dicts (`s3kp_models.wire`, shared with the InferenceFunction); the models
below describe it for OpenAPI without being built on every request.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TASK_TYPE = "keypoint-detection"


class KeypointOut(BaseModel):
    """`results.Keypoint` on the wire (`s3kp_models.wire.wire_keypoint`)."""

    model_config = ConfigDict(populate_by_name=True)

    x: float
    y: float
    confidence: float
    class_id: int = Field(description="the keypoint's slot in the model's keypoint list")
    class_: str = Field(alias="class", description="the keypoint's name (self-hosted server's field)")
    class_name: str = Field(description="the same name (hosted API docs' field)")


class PredictionOut(BaseModel):
    """`results.Prediction` on the wire (`s3kp_models.wire.wire_prediction`)."""

    model_config = ConfigDict(populate_by_name=True)

    x: float = Field(description="box centre, pixels")
    y: float
    width: float
    height: float
    class_: str = Field(alias="class")
    class_id: int
    confidence: float
    detection_id: str
    keypoints: list[KeypointOut]


class ImageSizeOut(BaseModel):
    width: int
    height: int


class InferenceResponse(BaseModel):
    time: float = Field(
        description="seconds from the request's image to the predictions: image decoding and the model with "
        "its pre- and post-processing, not drawing (as Roboflow's servers measure it)"
    )
    inference_id: str
    image: ImageSizeOut
    predictions: list[PredictionOut]
    visualization: str | None = Field(
        default=None, description="base64 JPEG, only with format=image_and_json / visualize_predictions"
    )


class ErrorMessage(BaseModel):
    message: str


# inference-sdk v1 --------------------------------------------------------------------------------------


class ImageRef(BaseModel):
    type: Literal["base64", "url"]
    value: str


class KeypointsDetectionRequest(BaseModel):
    """`POST /infer/keypoints_detection`: inference's own field names; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore")

    model_id: str
    image: ImageRef | list[ImageRef]
    api_key: str | None = None
    confidence: float = Field(default=0.4, ge=0, le=1)
    iou_threshold: float = Field(default=0.3, ge=0, le=1)
    class_filter: list[str] | None = None
    keypoint_confidence: float = Field(default=0.0, ge=0, le=1)
    max_detections: int = Field(default=300, ge=1, le=10_000)
    visualize_predictions: bool = False
    visualization_labels: bool = False
    visualization_stroke_width: int | None = Field(default=None, ge=1, le=50)


class ModelAddRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_id: str
    api_key: str | None = None


class RegisteredModel(BaseModel):
    model_id: str
    task_type: str = TASK_TYPE
    batch_size: int
    input_height: int
    input_width: int


class ModelRegistry(BaseModel):
    models: list[RegisteredModel]


# our catalogue --------------------------------------------------------------------------------------


class ModelDescription(BaseModel):
    model_id: str
    task_type: str = TASK_TYPE
    description: str
    class_names: list[str]
    keypoint_names: list[str]
    skeleton: list[tuple[int, int]] = Field(description="pairs of keypoint class_ids to join with a line")
    input_width: int
    input_height: int


class ModelCatalogue(BaseModel):
    models: list[ModelDescription]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str]
    inference_threads: int
