"""Specification of the annotated copy: what is drawn, where, and what is left alone."""

from __future__ import annotations

import pytest
from msgspec.structs import replace
from PIL import Image, ImageChops
from s3kp_core import skeletons
from s3kp_core.annotate import HALO, class_colour, draw_annotations, resolve_skeleton
from s3kp_core.results import Keypoint, Prediction

GREY = (128, 128, 128)


def grey(size: tuple[int, int] = (200, 200), mode: str = "RGB") -> Image.Image:
    return Image.new("RGB", size, GREY).convert(mode)


def keypoint(slot: int, x: float, y: float, confidence: float = 0.9) -> Keypoint:
    return Keypoint(x=x, y=y, confidence=confidence, class_id=slot, name=f"kp{slot}")


def person(*keypoints: Keypoint, box: tuple[float, float, float, float] = (100, 100, 120, 120)) -> Prediction:
    x, y, width, height = box
    return Prediction(
        x=x, y=y, width=width, height=height, confidence=0.87, class_name="person", class_id=0,
        keypoints=keypoints,
    )  # fmt: skip


def changed(before: Image.Image, after: Image.Image, xy: tuple[int, int]) -> bool:
    return before.convert("RGB").getpixel(xy) != after.getpixel(xy)


def test_keypoints_are_drawn_as_dots_at_their_positions() -> None:
    image = grey()

    out = draw_annotations(image, [person(keypoint(0, 80, 90), keypoint(1, 130, 110))], labels=False)

    assert out.getpixel((80, 90)) == class_colour(0)
    assert out.getpixel((130, 110)) == class_colour(0)


def test_a_skeleton_edge_is_drawn_between_its_keypoints() -> None:
    image = grey()
    prediction = person(keypoint(0, 60, 100), keypoint(1, 140, 100))

    with_edge = draw_annotations(image, [prediction], skeleton=[(0, 1)], labels=False)
    without_edge = draw_annotations(image, [prediction], skeleton=None, labels=False)

    assert with_edge.getpixel((100, 100)) == class_colour(0)  # the midpoint, far from both dots
    assert without_edge.getpixel((100, 100)) == GREY


def test_low_confidence_keypoints_and_their_edges_leave_pixels_unchanged() -> None:
    image = grey()
    prediction = person(keypoint(0, 60, 100, confidence=0.9), keypoint(1, 140, 100, confidence=0.2))

    out = draw_annotations(image, [prediction], skeleton=[(0, 1)], keypoint_threshold=0.5, labels=False)

    assert out.getpixel((60, 100)) == class_colour(0)
    assert out.getpixel((140, 100)) == GREY
    assert out.getpixel((100, 100)) == GREY


def test_an_edge_to_a_missing_keypoint_is_not_drawn() -> None:
    out = draw_annotations(grey(), [person(keypoint(0, 60, 100))], skeleton=[(0, 5)], labels=False)

    assert out.getpixel((61, 100)) == class_colour(0)
    assert out.getpixel((100, 100)) == GREY


def test_the_box_is_outlined_in_the_class_colour_on_a_dark_halo() -> None:
    out = draw_annotations(grey(), [person(box=(100, 100, 100, 100))], labels=False, stroke=3)

    assert out.getpixel((50, 100)) == class_colour(0)  # left edge
    assert out.getpixel((48, 100)) == HALO  # just outside it
    assert out.getpixel((100, 100)) == GREY  # the inside is left alone


def test_each_class_gets_its_own_colour() -> None:
    other = replace(person(box=(100, 100, 100, 100)), class_id=1, class_name="hand")

    out = draw_annotations(grey(), [other], labels=False, stroke=3)

    assert class_colour(0) != class_colour(1)
    assert out.getpixel((50, 100)) == class_colour(1)


def test_the_input_image_is_not_mutated_and_a_new_image_is_returned() -> None:
    image = grey()
    before = image.copy()

    out = draw_annotations(image, [person(keypoint(0, 80, 90))], skeleton=[(0, 1)])

    assert out is not image
    assert ImageChops.difference(image, before).getbbox() is None
    assert ImageChops.difference(out, before).getbbox() is not None


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "1", "I;16"])
def test_other_modes_are_converted_to_rgb(mode: str) -> None:
    out = draw_annotations(grey(mode=mode), [person(keypoint(0, 80, 90))])

    assert out.mode == "RGB"
    assert out.getpixel((80, 90)) == class_colour(0)


def test_labels_show_class_and_confidence_on_a_filled_background_above_the_box() -> None:
    image = grey((300, 300))
    prediction = person(box=(150, 150, 100, 100))

    labelled = draw_annotations(image, [prediction], labels=True)
    plain = draw_annotations(image, [prediction], labels=False)

    above_box = (100, 0, 250, 99)
    assert ImageChops.difference(plain.crop(above_box), image.crop(above_box)).getbbox() is None
    label_area = labelled.crop(above_box)
    assert label_area.getpixel((1, label_area.height - 3)) == class_colour(0)  # the filled background
    colours = {colour for _, colour in label_area.getcolors(maxcolors=10_000) or []}
    assert len(colours) > 2  # text drawn (anti-aliased) on it


def test_a_label_for_a_box_at_the_top_edge_stays_inside_the_image() -> None:
    image = grey((300, 300))

    out = draw_annotations(image, [person(box=(150, 50, 100, 100))], labels=True)

    assert out.getpixel((101, 2)) == class_colour(0)


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (3, 400)])
def test_tiny_and_thin_images_do_not_crash(size: tuple[int, int]) -> None:
    prediction = person(keypoint(0, 0, 0), keypoint(1, 5, 5), box=(2, 2, 30, 30))

    out = draw_annotations(grey(size), [prediction], skeleton=[(0, 1)])

    assert out.size == size


def test_coordinates_outside_the_image_or_not_finite_are_ignored_without_error() -> None:
    prediction = person(keypoint(0, -50, 5000), keypoint(1, float("nan"), 3), box=(float("inf"), 1, 2, 3))

    out = draw_annotations(grey(), [prediction], skeleton=[(0, 1)])

    assert ImageChops.difference(out, grey()).getbbox() is None


def test_strokes_and_dots_scale_with_the_image() -> None:
    small, large = grey((200, 200)), grey((4000, 4000))
    scale = 20

    def dot_width(image: Image.Image, centre: int) -> int:
        out = draw_annotations(image, [person(keypoint(0, centre, centre), box=(0, 0, 0, 0))], labels=False)
        row = [out.getpixel((x, centre)) for x in range(out.width)]
        return sum(1 for pixel in row if pixel == class_colour(0))

    assert dot_width(large, 100 * scale) >= 5 * dot_width(small, 100)


def test_an_explicit_stroke_sets_the_line_width() -> None:
    out = draw_annotations(grey(), [person(box=(100, 100, 100, 100))], labels=False, stroke=6)

    row = [out.getpixel((x, 100)) for x in range(40, 70)]
    assert row.count(class_colour(0)) == 6


# --- resolve_skeleton -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [(17, skeletons.COCO_17), (33, skeletons.POSE_33), (21, skeletons.HAND_21), (6, skeletons.FACE_6)],
)
def test_auto_picks_the_built_in_layout_with_that_many_keypoints(
    count: int, expected: skeletons.Skeleton
) -> None:
    assert resolve_skeleton("auto", count) == expected.edges
    assert resolve_skeleton("", count) == expected.edges


def test_auto_without_a_matching_layout_draws_no_edges() -> None:
    assert resolve_skeleton("auto", 5) is None


@pytest.mark.parametrize("name", ["coco17", "pose33", "hand21", "face6", " COCO17 "])
def test_a_layout_can_be_named(name: str) -> None:
    assert resolve_skeleton(name, 0) == skeletons.BUILT_IN[name.strip().lower()].edges


def test_none_disables_edges() -> None:
    assert resolve_skeleton("none", 17) is None


def test_a_json_edge_list_is_used_as_given() -> None:
    assert resolve_skeleton("[[0, 1], [1, 2]]", 3) == ((0, 1), (1, 2))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("coco18", "expected one of auto, none, coco17"),
        ("[[0, 1], [2]]", "edge [2]"),
        ("[[0, -1]]", "non-negative"),
        ("[[0, true]]", "edge [0, True]"),
        ('{"a": 1}', "must be a list"),
        ("[[0, 1]", "not valid JSON"),
    ],
)
def test_invalid_settings_are_rejected_with_a_clear_message(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match="SKELETON") as raised:
        resolve_skeleton(setting, 17)

    assert message in str(raised.value)
