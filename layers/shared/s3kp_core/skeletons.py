"""Built-in keypoint layouts: names (by slot = keypoint class_id) and the edges a drawing joins.

The inference response carries no skeleton edges (they live in the model's version record), so a
drawing client needs them from configuration. These are the layouts this project knows; the local
inference server publishes the same ones for its models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skeleton:
    name: str
    keypoint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        count = len(self.keypoint_names)
        for a, b in self.edges:
            if not (0 <= a < count and 0 <= b < count):
                raise ValueError(f"skeleton {self.name}: edge ({a}, {b}) outside 0..{count - 1}")


COCO_17 = Skeleton(
    "coco17",
    (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    (
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
)  # fmt: skip

# MediaPipe BlazePose's 33 landmarks and its POSE_CONNECTIONS.
POSE_33 = Skeleton(
    "pose33",
    (
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
        "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
        "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
        "left_foot_index", "right_foot_index",
    ),
    (
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
        (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
        (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
        (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
    ),
)  # fmt: skip

# MediaPipe Hands' 21 landmarks and its HAND_CONNECTIONS.
HAND_21 = Skeleton(
    "hand21",
    (
        "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_finger_mcp",
        "index_finger_pip", "index_finger_dip", "index_finger_tip", "middle_finger_mcp",
        "middle_finger_pip", "middle_finger_dip", "middle_finger_tip", "ring_finger_mcp",
        "ring_finger_pip", "ring_finger_dip", "ring_finger_tip", "pinky_mcp", "pinky_pip",
        "pinky_dip", "pinky_tip",
    ),
    (
        (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
        (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
    ),
)  # fmt: skip

# BlazeFace's 6 keypoints (the subject's right eye first, as MediaPipe orders them).
FACE_6 = Skeleton(
    "face6",
    ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion"),
    ((0, 1), (0, 2), (1, 2), (2, 3), (0, 4), (1, 5)),
)

BUILT_IN: dict[str, Skeleton] = {s.name: s for s in (COCO_17, POSE_33, HAND_21, FACE_6)}


def for_keypoint_count(count: int) -> Skeleton | None:
    """The built-in layout with this many keypoints, if exactly one has it (the `auto` choice)."""
    matches = [s for s in BUILT_IN.values() if len(s.keypoint_names) == count]
    return matches[0] if len(matches) == 1 else None
