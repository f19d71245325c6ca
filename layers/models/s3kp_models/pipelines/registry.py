"""The built-in models, by Roboflow-style id (`project/version`).

`load_pipelines(directory)` loads every model (a few hundred milliseconds), or only the ones asked for
(the InferenceFunction loads its configured model alone: a shorter cold start); each pipeline's
`predict` is safe to call from several threads at once (see InterpreterPool).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from s3kp_core.skeletons import FACE_6, HAND_21, POSE_33, Skeleton

from s3kp_models import model_files
from s3kp_models.model_files import model_path
from s3kp_models.pipelines.base import KeypointPipeline, ModelInfo
from s3kp_models.pipelines.detector import DetectorSpec, SsdDetector
from s3kp_models.pipelines.faces import FULL_RANGE, SHORT_RANGE, FacePipeline
from s3kp_models.pipelines.hands import PALM_DETECTOR, HandPipeline
from s3kp_models.pipelines.interpreter_pool import InterpreterPool, default_pool_size
from s3kp_models.pipelines.pose import POSE_DETECTOR, PosePipeline

MODEL_IDS = model_files.MODEL_IDS


def _info(
    model_id: str, description: str, class_name: str, skeleton: Skeleton, spec: DetectorSpec
) -> ModelInfo:
    return ModelInfo(
        model_id=model_id,
        description=description,
        class_names=(class_name,),
        keypoint_names=skeleton.keypoint_names,
        skeleton=skeleton.edges,
        input_width=spec.anchors.input_width,
        input_height=spec.anchors.input_height,
    )


def load_pipelines(
    model_dir: Path,
    *,
    num_threads: int | None = None,
    pool_size: int | None = None,
    model_ids: Iterable[str] = MODEL_IDS,
) -> dict[str, KeypointPipeline]:
    """The models of `model_ids` (default: all), loaded from `model_dir` (raises ModelFilesMissing with
    a remedy, KeyError for an id that is not one of MODEL_IDS).

    num_threads: XNNPACK threads per interpreter; default: up to 2 (the cores here). pool_size:
    interpreters per model; default: one per core (at most 2). Measured on 2 cores with pose/1, 2 threads
    beat 1 thread both for a single request (about 1.6x faster) and under 2-4 concurrent callers (about
    2x the throughput).
    """
    threads = num_threads or default_pool_size()

    def pool(name: str) -> InterpreterPool:
        return InterpreterPool(model_path(name, model_dir), size=pool_size, num_threads=threads)

    def detector(name: str, spec: DetectorSpec) -> SsdDetector:
        return SsdDetector(spec, pool(name))

    builders: dict[str, Callable[[], KeypointPipeline]] = {
        "faces/1": lambda: FacePipeline(
            _info(
                "faces/1", "MediaPipe BlazeFace short range: faces within ~2 m", "face", FACE_6, SHORT_RANGE
            ),
            detector("face_detection_short_range.tflite", SHORT_RANGE),
        ),
        "faces/2": lambda: FacePipeline(
            _info(
                "faces/2",
                "MediaPipe BlazeFace full range: small and distant faces",
                "face",
                FACE_6,
                FULL_RANGE,
            ),
            detector("face_detection_full_range_sparse.tflite", FULL_RANGE),
        ),
        "pose/1": lambda: PosePipeline(
            _info(
                "pose/1",
                "MediaPipe BlazePose full: 33 landmarks per person",
                "person",
                POSE_33,
                POSE_DETECTOR,
            ),
            detector("pose_detection.tflite", POSE_DETECTOR),
            pool("pose_landmark_full.tflite"),
        ),
        "hands/1": lambda: HandPipeline(
            _info("hands/1", "MediaPipe Hands full: 21 landmarks per hand", "hand", HAND_21, PALM_DETECTOR),
            detector("palm_detection_full.tflite", PALM_DETECTOR),
            pool("hand_landmark_full.tflite"),
        ),
    }
    return {model_id: builders[model_id]() for model_id in model_ids}
