"""The export formats. Each writer takes results one at a time (the API's detail shape) and keeps only
what the format's closing needs (COCO categories: a few names per class), so memory stays flat.

    JsonlWriter  one result per line, exactly as the API returns it; a video's: one line per sampled frame
    CsvWriter    one row per keypoint (a video's with its `frame` and `time_seconds`)
    CocoWriter   COCO keypoints: images (a video's: one per sampled frame), annotations (spooled to a
                 temporary file), categories

A video's result arrives with `frames`, an iterator over its sampled frames (`ResultsApi.iter_frames`,
read page by page as the writer goes: a half-hour video never sits in memory whole).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from s3kp_core.skeletons import BUILT_IN

FORMATS = ("coco", "csv", "jsonl")
DEFAULT_VISIBILITY_THRESHOLD = 0.5
COORDINATE_DECIMALS = 3
CSV_COLUMNS = (
    "result_id", "source_bucket", "source_key", "model_id", "image_width", "image_height",
    "frame", "time_seconds",  # a video's sampled frame; empty for images
    "detection_index", "class_name", "detection_confidence",
    "box_x_min", "box_y_min", "box_width", "box_height",
    "keypoint_index", "keypoint_name", "x", "y", "confidence",
)  # fmt: skip
# A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV-injection list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# COCO sizes every annotation's `keypoints` by its category's largest slot (class_id), so one absurd
# class_id would pad every annotation of the class: slots at or over this are left out. The result does
# not carry the model's keypoint count (a detection may lack slots: keypoints under the threshold are
# dropped), so this is a ceiling above the models we know (MediaPipe's face mesh has 478); users who know
# their model's count pass it (`--max-keypoints`).
DEFAULT_MAX_KEYPOINTS = 1024


@dataclass
class ExportCounts:
    results: int = 0  # results read from the API
    written: int = 0  # results that contributed to the file (COCO/CSV: succeeded with an image size)
    detections: int = 0
    keypoints: int = 0
    skipped_statuses: dict[str, int] = field(default_factory=dict)
    refused_keypoints: int = 0  # COCO: keypoints left out for a class_id outside 0..max_keypoints-1

    def skip(self, status: str) -> None:
        self.skipped_statuses[status] = self.skipped_statuses.get(status, 0) + 1


class Writer(Protocol):
    counts: ExportCounts

    def write(self, result: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


def _round(value: Any) -> float:
    return round(float(value), COORDINATE_DECIMALS)


def _box(prediction: dict[str, Any]) -> tuple[float, float, float, float]:
    """x_min, y_min, width, height from the API's centre-based box."""
    width, height = float(prediction["width"]), float(prediction["height"])
    x_min = float(prediction["x"]) - width / 2
    y_min = float(prediction["y"]) - height / 2
    return _round(x_min), _round(y_min), _round(width), _round(height)


def _predictions(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result.get("predictions") or ())


def is_video(result: dict[str, Any]) -> bool:
    return result.get("media_type") == "video"


def frame_file_name(key: Any, frame: Any) -> str:
    """A video's sampled frame as a COCO image's `file_name`: the video's key and the frame's index."""
    return f"{key}#frame={frame}"


def _images(result: dict[str, Any]) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """(frame or None, result-like) per image a result holds: itself, or each sampled frame of a video
    with that frame's predictions (frame: `{"frame": n, "time_seconds": t}`)."""
    if not is_video(result):
        yield None, result
        return
    video = result.get("video") or {}
    size = {"width": video.get("width"), "height": video.get("height")}
    for frame in result.get("frames") or ():
        view = {**result, "image": size, "predictions": frame.get("predictions") or []}
        yield {"frame": frame.get("frame"), "time_seconds": frame.get("time_seconds")}, view


class JsonlWriter:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self.counts = ExportCounts()

    def write(self, result: dict[str, Any]) -> None:
        self.counts.results += 1
        self.counts.written += 1
        if not is_video(result):
            self._line(result)
            return
        # A video: one line per sampled frame, the result's fields with that frame's predictions.
        base = {name: value for name, value in result.items() if name != "frames"}
        frames = result.get("frames")
        if frames is None:  # no frames to read (processing, failed): the result as the API has it
            self._line(base)
            return
        for frame in frames:
            line = base | {
                "frame": frame.get("frame"),
                "time_seconds": frame.get("time_seconds"),
                "predictions": frame.get("predictions") or [],
            }
            self._line(line)

    def _line(self, result: dict[str, Any]) -> None:
        self._out.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
        for prediction in _predictions(result):
            self.counts.detections += 1
            self.counts.keypoints += len(prediction.get("keypoints") or ())

    def finish(self) -> None:
        self._out.flush()


class CsvWriter:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._csv = csv.writer(out, lineterminator="\r\n")  # RFC 4180, what spreadsheets expect
        self._csv.writerow(CSV_COLUMNS)
        self.counts = ExportCounts()

    def write(self, result: dict[str, Any]) -> None:
        self.counts.results += 1
        if result.get("status") != "succeeded":
            self.counts.skip(str(result.get("status")))
            return
        self.counts.written += 1
        source = result.get("source") or {}
        for frame, view in _images(result):
            image = view.get("image") or {}
            common = (
                result.get("result_id"), source.get("bucket"), source.get("key"),
                result.get("model_id"), image.get("width"), image.get("height"),
                (frame or {}).get("frame"), (frame or {}).get("time_seconds"),
            )  # fmt: skip
            self._rows(common, view)

    def _rows(self, common: tuple[Any, ...], view: dict[str, Any]) -> None:
        for index, prediction in enumerate(_predictions(view)):
            self.counts.detections += 1
            detection = (index, prediction.get("class_name"), prediction.get("confidence"), *_box(prediction))
            for keypoint in prediction.get("keypoints") or ():
                self.counts.keypoints += 1
                row = (
                    *common, *detection, keypoint.get("class_id"), keypoint.get("name"),
                    _round(keypoint["x"]), _round(keypoint["y"]), keypoint.get("confidence"),
                )  # fmt: skip
                self._csv.writerow([_cell(value) for value in row])

    def finish(self) -> None:
        self._out.flush()


def _cell(value: Any) -> str | int | float:
    """Every cell of a row goes through here, whatever its column: the values come from the API.

    A number (an int or finite float, as JSON parsing or our own rounding made it) is written as a number:
    its text (`-3.5`, `1e-05`) is data to a spreadsheet, never a formula. Anything else is text, which
    the API's caller cannot trust (a key or class name chosen upstream, a string where a number belongs):
    text starting with a formula character gets a leading apostrophe (OWASP's CSV-injection advice).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@dataclass
class _Category:
    id: int
    name: str
    slot_names: dict[int, str] = field(default_factory=dict)

    def keypoint_count(self) -> int:
        return max(self.slot_names, default=-1) + 1

    def keypoint_names(self) -> list[str]:
        return [self.slot_names.get(slot, f"keypoint_{slot}") for slot in range(self.keypoint_count())]

    def skeleton(self) -> list[list[int]]:
        """1-based COCO edges from the built-in layout whose names agree with the observed ones."""
        names = self.keypoint_names()
        for layout in BUILT_IN.values():
            if len(layout.keypoint_names) != len(names):
                continue
            if all(layout.keypoint_names[slot] == name for slot, name in self.slot_names.items()):
                return [[a + 1, b + 1] for a, b in layout.edges]
        return []


class CocoWriter:
    """COCO keypoints. `images` stream straight to the file; `annotations` go to a spool file (they form
    the next array, and each needs its category's final keypoint count, known only at the end)."""

    def __init__(
        self,
        out: IO[str],
        *,
        visibility_threshold: float = DEFAULT_VISIBILITY_THRESHOLD,
        description: str = "s3-keypoints export",
        spool_dir: str | None = None,
        max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._out = out
        self._threshold = visibility_threshold
        self._max_keypoints = max_keypoints
        self._warn = warn
        # Deleted when closed (finish/abort), or by the OS if the process dies: never left behind.
        self._spool = tempfile.TemporaryFile(  # noqa: SIM115 - lives across write() calls
            "w+", encoding="utf-8", dir=spool_dir, prefix=".s3kp-coco-"
        )
        self._categories: dict[str, _Category] = {}
        self._next_image_id = 1
        self._next_annotation_id = 1
        self.counts = ExportCounts()
        info = {"description": description, "version": "1.0"}
        out.write('{"info":' + json.dumps(info) + ',"licenses":[],"images":[')

    def write(self, result: dict[str, Any]) -> None:
        self.counts.results += 1
        if result.get("status") != "succeeded" or not (result.get("image") or result.get("video")):
            self.counts.skip(str(result.get("status")))
            return
        self.counts.written += 1
        source = result.get("source") or {}
        for frame, view in _images(result):
            image = view["image"]
            image_id = self._next_image_id
            self._next_image_id += 1
            # Not COCO's, ignored by its tools: where the image and its result are (a video's frame: which).
            where = {
                "result_id": result["result_id"], "bucket": source.get("bucket"),
                "model_id": result.get("model_id"), "updated_at": result.get("updated_at"),
            }  # fmt: skip
            if frame is not None:
                where |= {"video": source.get("key"), **frame}
            entry = {
                "id": image_id,
                "file_name": source.get("key")
                if frame is None
                else frame_file_name(source.get("key"), frame["frame"]),
                "width": image["width"],
                "height": image["height"],
                "s3kp": where,
            }
            self._out.write(("," if image_id > 1 else "") + json.dumps(entry, ensure_ascii=False))
            for prediction in _predictions(view):
                self._spool_annotation(image_id, prediction, result.get("result_id"))

    def _spool_annotation(self, image_id: int, prediction: dict[str, Any], result_id: Any) -> None:
        class_name = str(prediction.get("class_name"))
        category = self._categories.get(class_name)
        if category is None:
            category = self._categories[class_name] = _Category(len(self._categories) + 1, class_name)
        slots: dict[int, list[float]] = {}
        for keypoint in prediction.get("keypoints") or ():
            slot = keypoint.get("class_id")
            if not (isinstance(slot, int) and not isinstance(slot, bool) and 0 <= slot < self._max_keypoints):
                self.counts.refused_keypoints += 1
                if self._warn is not None:
                    self._warn(
                        f"result {_quoted(result_id)}: a {_quoted(class_name)} keypoint has class_id "
                        f"{_quoted(slot)}, outside 0..{self._max_keypoints - 1} (--max-keypoints): "
                        "left out of the COCO file"
                    )
                continue
            category.slot_names.setdefault(slot, str(keypoint.get("name") or f"keypoint_{slot}"))
            visible = 2 if float(keypoint["confidence"]) >= self._threshold else 1
            slots[slot] = [_round(keypoint["x"]), _round(keypoint["y"]), visible]
        x_min, y_min, width, height = _box(prediction)
        annotation = {
            "id": self._next_annotation_id,
            "image_id": image_id,
            "category_id": category.id,
            "bbox": [x_min, y_min, width, height],
            "area": _round(width * height),
            "iscrowd": 0,
            "score": prediction.get("confidence"),
            "slots": slots,  # padded to the category's keypoint count in finish()
        }
        self._next_annotation_id += 1
        self.counts.detections += 1
        self.counts.keypoints += len(slots)
        self._spool.write(json.dumps(annotation) + "\n")

    def finish(self) -> None:
        self._out.write('],"annotations":[')
        self._spool.seek(0)
        counts = {category.id: category.keypoint_count() for category in self._categories.values()}
        for index, line in enumerate(self._spool):
            annotation = json.loads(line)
            slots = annotation.pop("slots")
            keypoints: list[float] = []
            for slot in range(counts[annotation["category_id"]]):
                keypoints.extend(slots.get(str(slot), (0, 0, 0)))  # COCO: v=0, not labelled
            annotation["keypoints"] = keypoints
            annotation["num_keypoints"] = len(slots)
            self._out.write(("," if index else "") + json.dumps(annotation))
        self._spool.close()
        self._out.write('],"categories":' + json.dumps(self._category_list(), ensure_ascii=False) + "}\n")
        self._out.flush()

    def _category_list(self) -> list[dict[str, Any]]:
        return [
            {
                "id": category.id,
                "name": category.name,
                "supercategory": category.name,
                "keypoints": category.keypoint_names(),
                "skeleton": category.skeleton(),
            }
            for category in self._categories.values()
        ]

    def abort(self) -> None:
        self._spool.close()


def _quoted(value: Any, limit: int = 60) -> str:
    """A value from the API for a warning line: repr (no control characters reach the terminal), cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_all(writer: Writer, results: Iterable[dict[str, Any]]) -> ExportCounts:
    for result in results:
        writer.write(result)
    writer.finish()
    return writer.counts
