"""The export formats, fed results in the API's detail shape.

Specification: COCO keypoints load in the reference COCO API (pycocotools) and score a perfect AP when
evaluated against themselves; CSV has one row per keypoint; JSONL is the API's shape, one per line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from s3kp_core.skeletons import COCO_17, FACE_6, Skeleton

from s3kp.export.formats import CSV_COLUMNS, CocoWriter, CsvWriter, JsonlWriter, write_all


def prediction(
    rng: random.Random, skeleton: Skeleton, class_name: str, width: int, height: int
) -> dict[str, Any]:
    box_w, box_h = rng.uniform(40, width / 3), rng.uniform(40, height / 3)
    cx, cy = rng.uniform(box_w / 2, width - box_w / 2), rng.uniform(box_h / 2, height - box_h / 2)
    keypoints = [
        {
            "x": rng.uniform(cx - box_w / 2, cx + box_w / 2),
            "y": rng.uniform(cy - box_h / 2, cy + box_h / 2),
            "confidence": rng.uniform(0.05, 1.0),
            "class_id": slot,
            "name": name,
        }
        for slot, name in enumerate(skeleton.keypoint_names)
    ]
    return {
        "x": cx, "y": cy, "width": box_w, "height": box_h, "confidence": rng.uniform(0.4, 1.0),
        "class_name": class_name, "class_id": 0, "detection_id": None, "keypoints": keypoints,
    }  # fmt: skip


def result(index: int, predictions: list[dict[str, Any]], status: str = "succeeded") -> dict[str, Any]:
    result_id = f"{index:032x}"
    keypoints = sum(len(p["keypoints"]) for p in predictions)
    return {
        "result_id": result_id,
        "status": status,
        "reason": None if status == "succeeded" else {"code": "image_undecodable", "message": "not an image"},
        "source": {"bucket": "uploads", "key": f"incoming/photo {index}.jpg", "size": 1000},
        "model_id": "faces/2",
        "image": {"width": 1024, "height": 768} if status == "succeeded" else None,
        "counts": {},
        "detections": len(predictions),
        "keypoints": keypoints,
        "timings_ms": {},
        "annotated": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "predictions": predictions if status == "succeeded" else None,
        "predictions_ref": None,
        "links": {"detail": f"/results/{result_id}", "annotated": None},
    }


def sample_results(count: int = 12, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    results = []
    for index in range(count):
        predictions = [prediction(rng, FACE_6, "face", 1024, 768) for _ in range(rng.randint(0, 3))]
        predictions += [prediction(rng, COCO_17, "person", 1024, 768) for _ in range(rng.randint(0, 2))]
        results.append(result(index, predictions))
    results.append(result(count, [], status="failed"))
    return results


def coco_document(results: list[dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    with path.open("w", encoding="utf-8") as out:
        write_all(CocoWriter(out, spool_dir=str(tmp_path)), results)
    return path


def test_coco_loads_in_pycocotools_with_images_annotations_and_categories(tmp_path: Path) -> None:
    results = sample_results()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(coco_document(results, tmp_path)))

    succeeded = [r for r in results if r["status"] == "succeeded"]
    assert len(coco.getImgIds()) == len(succeeded), "the failed result has no image entry"
    image = coco.loadImgs(1)[0]
    assert (image["file_name"], image["width"], image["height"]) == ("incoming/photo 0.jpg", 1024, 768)
    total = sum(len(r["predictions"]) for r in succeeded)
    assert len(coco.getAnnIds()) == total

    by_name = {c["name"]: c for c in coco.loadCats(coco.getCatIds())}
    assert by_name["face"]["keypoints"] == list(FACE_6.keypoint_names)
    assert by_name["face"]["skeleton"] == [[a + 1, b + 1] for a, b in FACE_6.edges], "1-based"
    assert by_name["person"]["keypoints"] == list(COCO_17.keypoint_names)
    assert len(by_name["person"]["skeleton"]) == len(COCO_17.edges)


def test_coco_annotations_are_in_original_pixels_with_visibility_from_confidence(tmp_path: Path) -> None:
    results = [result(1, [prediction(random.Random(3), FACE_6, "face", 1024, 768)])]
    document = json.loads(coco_document(results, tmp_path).read_text())
    (annotation,) = document["annotations"]
    source = results[0]["predictions"][0]

    x, y, w, h = annotation["bbox"]
    assert x == pytest.approx(source["x"] - source["width"] / 2, abs=1e-3)
    assert y == pytest.approx(source["y"] - source["height"] / 2, abs=1e-3)
    assert (w, h) == (pytest.approx(source["width"], abs=1e-3), pytest.approx(source["height"], abs=1e-3))
    assert annotation["area"] == pytest.approx(w * h, abs=1e-2)
    assert annotation["score"] == source["confidence"]
    assert annotation["num_keypoints"] == 6
    triples = [annotation["keypoints"][i : i + 3] for i in range(0, 18, 3)]
    for (kx, ky, visible), keypoint in zip(triples, source["keypoints"], strict=True):
        assert (kx, ky) == (pytest.approx(keypoint["x"], abs=1e-3), pytest.approx(keypoint["y"], abs=1e-3))
        assert visible == (2 if keypoint["confidence"] >= 0.5 else 1)


def test_coco_pads_missing_keypoint_slots_as_not_labelled(tmp_path: Path) -> None:
    full = prediction(random.Random(1), FACE_6, "face", 1024, 768)
    partial = dict(full, keypoints=[k for k in full["keypoints"] if k["class_id"] != 2])
    document = json.loads(coco_document([result(1, [full, partial])], tmp_path).read_text())

    second = document["annotations"][1]
    assert len(second["keypoints"]) == 18
    assert second["keypoints"][6:9] == [0, 0, 0]
    assert second["num_keypoints"] == 5


def test_coco_leaves_out_a_keypoint_whose_class_id_is_outside_the_models_keypoints(tmp_path: Path) -> None:
    """GIVEN one detection whose keypoint claims class_id 100,000 (a hostile or broken model answer: COCO
    pads every annotation of the class to its largest slot, so one such answer made a 143 MB file) THEN
    that keypoint is left out, the category keeps the model's 6 keypoints and the file stays small."""
    good = [prediction(random.Random(seed), FACE_6, "face", 1024, 768) for seed in range(3)]
    bad = prediction(random.Random(9), FACE_6, "face", 1024, 768)
    bad["keypoints"][5]["class_id"] = 100_000

    path = coco_document([result(1, good), result(2, [bad])], tmp_path)

    document = json.loads(path.read_text())
    (face,) = document["categories"]
    assert face["keypoints"] == list(FACE_6.keypoint_names)
    assert all(len(annotation["keypoints"]) == 18 for annotation in document["annotations"])
    assert document["annotations"][-1]["num_keypoints"] == 5
    assert path.stat().st_size < 20_000


def test_coco_warns_about_each_keypoint_left_out_naming_its_result(tmp_path: Path) -> None:
    """A class_id that is huge, negative, not an integer or missing is left out, counted and warned
    about with the result's id."""
    bad = prediction(random.Random(9), FACE_6, "face", 1024, 768)
    bad["keypoints"][5]["class_id"] = 10_000_000
    bad["keypoints"][4]["class_id"] = -1
    bad["keypoints"][3]["class_id"] = "3"
    bad["keypoints"][2].pop("class_id")
    warnings: list[str] = []

    with (tmp_path / "export.json").open("w", encoding="utf-8") as out:
        writer = CocoWriter(out, spool_dir=str(tmp_path), warn=warnings.append)
        counts = write_all(writer, [result(2, [bad])])

    assert counts.refused_keypoints == 4
    assert counts.keypoints == 2
    assert len(warnings) == 4
    assert all(f"{2:032x}" in warning for warning in warnings), "each warning names the result"
    assert "class_id 10000000, outside 0..1023" in warnings[-1]


def test_coco_takes_the_models_keypoint_count_as_the_bound_when_given(tmp_path: Path) -> None:
    detection = prediction(random.Random(4), COCO_17, "person", 1024, 768)
    path = tmp_path / "export.json"
    with path.open("w", encoding="utf-8") as out:
        counts = write_all(
            CocoWriter(out, spool_dir=str(tmp_path), max_keypoints=6), [result(1, [detection])]
        )

    (person,) = json.loads(path.read_text())["categories"]
    assert person["keypoints"] == list(COCO_17.keypoint_names[:6])
    assert counts.refused_keypoints == 11


def test_coco_survives_cocoeval_against_itself_with_a_perfect_score(tmp_path: Path) -> None:
    """Ground truth and detections from the same export: OKS 1 everywhere, so AP and AR are 1."""
    path = coco_document(sample_results(count=20), tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(path))
        detections = ground_truth.loadRes(str(_annotations_file(path, tmp_path)))
        for category in ground_truth.loadCats(ground_truth.getCatIds()):
            evaluation = COCOeval(ground_truth, detections, iouType="keypoints")
            evaluation.params.catIds = [category["id"]]
            evaluation.params.kpt_oks_sigmas = np.full(len(category["keypoints"]), 0.05)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            ap, ap50 = evaluation.stats[0], evaluation.stats[1]
            assert ap == pytest.approx(1.0), category["name"]
            assert ap50 == pytest.approx(1.0), category["name"]


def _annotations_file(path: Path, tmp_path: Path) -> Path:
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps(json.loads(path.read_text())["annotations"]))
    return detections


def test_csv_has_one_row_per_keypoint_and_escapes_formulas(tmp_path: Path) -> None:
    results = sample_results()
    results[0] = result(0, [prediction(random.Random(5), FACE_6, "face", 1024, 768)])
    results[0]["source"]["key"] = '=HYPERLINK("http://evil")'
    out = io.StringIO(newline="")
    counts = write_all(CsvWriter(out), results)

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    expected = sum(len(p["keypoints"]) for r in results for p in (r["predictions"] or ()))
    assert len(rows) == expected == counts.keypoints
    assert tuple(rows[0]) == CSV_COLUMNS
    row = rows[0]
    keypoint = results[0]["predictions"][0]["keypoints"][0]
    assert row["result_id"] == results[0]["result_id"]
    assert row["keypoint_name"] == keypoint["name"]
    assert float(row["x"]) == pytest.approx(keypoint["x"], abs=1e-3)
    assert float(row["confidence"]) == keypoint["confidence"]
    assert row["detection_index"] == "0"
    assert row["source_key"] == '\'=HYPERLINK("http://evil")', "a spreadsheet must not run it"
    assert counts.skipped_statuses == {"failed": 1}


def test_csv_neutralises_formula_text_in_every_column_and_keeps_numbers_as_numbers() -> None:
    """GIVEN a result whose every value the API passes through is text starting with a formula character
    (=, +, -, @, tab, CR), whatever the column's declared type, THEN each such cell starts with `'`;
    genuine numbers (JSON numbers, our rounded coordinates), negative ones included, stay numbers."""
    hostile = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1"]
    strings = iter(hostile * 3)
    keypoint = {
        "x": -3.25, "y": 7, "confidence": next(strings), "class_id": next(strings), "name": next(strings),
    }  # fmt: skip
    detection = {
        "x": 10, "y": 10, "width": 30, "height": 40, "confidence": next(strings),
        "class_name": next(strings), "class_id": 0, "keypoints": [keypoint],
    }  # fmt: skip
    record = result(1, [detection])
    record["result_id"] = next(strings)
    record["source"] = {"bucket": next(strings), "key": next(strings)}
    record["model_id"] = next(strings)
    record["image"] = {"width": next(strings), "height": next(strings)}
    out = io.StringIO(newline="")

    write_all(CsvWriter(out), [record])

    (row,) = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    text_columns = [
        "result_id", "source_bucket", "source_key", "model_id", "image_width", "image_height",
        "class_name", "detection_confidence", "keypoint_index", "keypoint_name", "confidence",
    ]  # fmt: skip
    for column in text_columns:
        assert row[column].startswith("'"), f"{column}: {row[column]!r} would run as a formula"
        assert row[column][1:] in hostile, column
    assert (row["x"], row["box_x_min"], row["y"]) == ("-3.25", "-5.0", "7.0"), "negative numbers stay numbers"
    assert row["detection_index"] == "0"


def test_csv_writes_json_numbers_as_numbers_and_other_values_as_neutralised_text() -> None:
    out = io.StringIO(newline="")
    keypoint = {"x": 1.0, "y": 2.0, "confidence": float("-inf"), "class_id": -4, "name": "-nose"}
    detection = {
        "x": 10, "y": 10, "width": 4, "height": 4, "confidence": -0.5, "class_name": "face", "class_id": 0,
        "keypoints": [keypoint],
    }  # fmt: skip

    write_all(CsvWriter(out), [result(1, [detection])])

    (row,) = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert (row["detection_confidence"], row["keypoint_index"]) == ("-0.5", "-4"), "numbers are data"
    assert row["confidence"] == "'-inf", "not a finite number: text, neutralised"
    assert row["keypoint_name"] == "'-nose"


def test_jsonl_is_the_apis_shape_one_result_per_line() -> None:
    results = sample_results(count=4)
    out = io.StringIO()
    counts = write_all(JsonlWriter(out), results)

    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == results
    assert counts.written == len(results)


# ------------------------------------------------------------------------------------------ videos


def video_result(index: int, frames: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """A succeeded video's detail, with the `frames` iterator the exporter attaches (one list of
    predictions per sampled frame, at 5 frames a second)."""
    detail = result(index, [])
    detail["source"]["key"] = f"incoming/clip {index}.mp4"
    detail |= {
        "image": None,
        "predictions": None,
        "media_type": "video",
        "video": {
            "duration_seconds": len(frames) / 5, "fps_sampled": 5.0, "frames": len(frames), "width": 640,
            "height": 360, "segments": 1, "segments_done": 1,
            "frames_ref": {"bucket": "uploads", "key": "predictions/x/run/frames.jsonl.gz"},
        },
        "detections": sum(len(p) for p in frames),
        "frames": iter(
            [{"frame": n, "time_seconds": n / 5, "predictions": p} for n, p in enumerate(frames)]
        ),
    }  # fmt: skip
    return detail


def video_frames(count: int = 6, seed: int = 3) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [[prediction(rng, FACE_6, "face", 640, 360) for _ in range(n % 3)] for n in range(count)]


def test_coco_has_one_image_per_sampled_frame_naming_the_video_and_the_frame(tmp_path: Path) -> None:
    frames = video_frames()
    path = tmp_path / "video.coco.json"
    with path.open("w") as out:
        counts = write_all(CocoWriter(out), [result(0, []), video_result(1, frames)])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    images = sorted(coco.loadImgs(coco.getImgIds()), key=lambda image: image["id"])
    assert [image["file_name"] for image in images[1:]] == [
        f"incoming/clip 1.mp4#frame={n}" for n in range(6)
    ]
    assert {(image["width"], image["height"]) for image in images[1:]} == {(640, 360)}
    assert images[3]["s3kp"]["frame"] == 2
    assert images[3]["s3kp"]["time_seconds"] == 0.4
    assert images[3]["s3kp"]["video"] == "incoming/clip 1.mp4"
    assert len(coco.getAnnIds(imgIds=[images[3]["id"]])) == len(frames[2]) == 2
    assert counts.detections == sum(len(p) for p in frames)


def test_csv_rows_of_a_video_carry_their_frame_and_time(tmp_path: Path) -> None:
    frames = video_frames()
    out = io.StringIO()
    write_all(
        CsvWriter(out),
        [result(0, [prediction(random.Random(1), FACE_6, "face", 1024, 768)]), video_result(1, frames)],
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {row["frame"] for row in rows if row["source_key"].endswith(".jpg")} == {""}
    video_rows = [row for row in rows if row["source_key"].endswith(".mp4")]
    assert len(video_rows) == 6 * sum(len(p) for p in frames)
    assert {(row["frame"], row["time_seconds"]) for row in video_rows} == {
        (str(n), str(n / 5)) for n, p in enumerate(frames) if p
    }
    assert {row["image_width"] for row in video_rows} == {"640"}


def test_jsonl_has_one_line_per_sampled_frame_of_a_video() -> None:
    frames = video_frames()
    out = io.StringIO()
    write_all(JsonlWriter(out), [video_result(1, frames)])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["frame"], line["time_seconds"]) for line in lines] == [(n, n / 5) for n in range(6)]
    assert [len(line["predictions"]) for line in lines] == [len(p) for p in frames]
    assert all(line["media_type"] == "video" and "frames" not in line for line in lines)
