"""Draw predictions on an image: boxes, class labels, keypoints and skeleton edges.

Used for the annotated copy the ingest function writes and by the local inference server's
`format=image`. Everything scales with the image (a 64 px thumbnail and a 4000 px photo both read well)
and stays visible on any background: each coloured stroke sits on a dark halo, labels sit on a filled
box, keypoint dots have a dark outline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from s3kp_core import skeletons
from s3kp_core.results import Keypoint, Prediction

Edge = tuple[int, int]
RGB = tuple[int, int, int]

# A fixed, high-contrast categorical palette (Tableau 10's hues, brightened a little for dark images).
PALETTE: tuple[RGB, ...] = (
    (255, 127, 14), (31, 159, 255), (44, 200, 44), (240, 60, 60), (170, 120, 230),
    (200, 130, 100), (240, 120, 200), (190, 190, 190), (210, 210, 40), (23, 210, 230),
)  # fmt: skip
HALO: RGB = (20, 20, 20)


@dataclass(frozen=True)
class _Style:
    stroke: int
    halo: int
    radius: int
    font_size: int

    @classmethod
    def for_image(cls, size: tuple[int, int], stroke: int | None) -> _Style:
        longest = max(size)
        width = stroke if stroke is not None else max(1, round(longest / 300))
        width = max(1, width)
        return cls(
            stroke=width,
            halo=max(1, math.ceil(width / 2)),
            radius=max(2, round(width * 1.6)),
            font_size=max(11, round(longest / 45), width * 5),
        )


def class_colour(class_id: int) -> RGB:
    return PALETTE[class_id % len(PALETTE)]


def draw_annotations(
    image: Image.Image,
    predictions: Sequence[Prediction],
    *,
    skeleton: Sequence[Edge] | None = None,
    keypoint_threshold: float = 0.0,
    labels: bool = True,
    stroke: int | None = None,
) -> Image.Image:
    """A new RGB image with `predictions` (in `image`'s pixels) drawn on a copy of `image`.

    `skeleton` edges join keypoints by their `class_id` (slot); an edge is drawn only when both ends
    are present and at least `keypoint_threshold` confident, and weaker keypoints are not drawn at all.
    `stroke` is the line width in pixels (None: from the image's longest side).
    """
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    style = _Style.for_image(canvas.size, stroke)
    draw = ImageDraw.Draw(canvas)
    for prediction in predictions:
        colour = class_colour(prediction.class_id)
        _draw_box(draw, prediction, colour, style)
        visible = {
            kp.class_id: kp
            for kp in prediction.keypoints
            if kp.confidence >= keypoint_threshold and _finite(kp.x, kp.y)
        }
        for a, b in skeleton or ():
            if a in visible and b in visible:
                _draw_edge(draw, visible[a], visible[b], colour, style)
        for keypoint in visible.values():
            _draw_keypoint(draw, keypoint, colour, style)
    if labels:  # last, so no box or edge of another detection covers a label
        for prediction in predictions:
            _draw_label(draw, prediction, class_colour(prediction.class_id), style, canvas.size)
    return canvas


def resolve_skeleton(setting: str, keypoint_count: int) -> tuple[Edge, ...] | None:
    """The edges the `SKELETON` setting asks for, for a model with `keypoint_count` keypoints.

    `auto` (or empty): the built-in layout with that many keypoints, if exactly one has it;
    `coco17`, `pose33`, `hand21`, `face6`: that layout; `none`: no edges;
    a JSON list of `[a, b]` pairs of keypoint slots, e.g. `[[0, 1], [1, 2]]`.
    Raises ValueError for anything else. Edges to slots a prediction lacks are simply not drawn.
    """
    choice = setting.strip()
    name = choice.lower()
    if name in ("", "auto"):
        layout = skeletons.for_keypoint_count(keypoint_count)
        return layout.edges if layout else None
    if name == "none":
        return None
    if name in skeletons.BUILT_IN:
        return skeletons.BUILT_IN[name].edges
    if choice.startswith(("[", "{")):
        return _parse_edges(choice)
    known = ", ".join(["auto", "none", *skeletons.BUILT_IN])
    raise ValueError(f"SKELETON={setting!r}: expected one of {known} or a JSON list of [a, b] pairs")


def _parse_edges(text: str) -> tuple[Edge, ...]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SKELETON is not valid JSON: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(parsed, list):
        raise ValueError("SKELETON JSON must be a list of [a, b] pairs")
    edges: list[Edge] = []
    for item in parsed:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in item)
        ):
            raise ValueError(f"SKELETON edge {item!r}: expected a pair of non-negative keypoint slots")
        edges.append((item[0], item[1]))
    return tuple(edges)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _draw_box(draw: ImageDraw.ImageDraw, p: Prediction, colour: RGB, style: _Style) -> None:
    if not _finite(p.x, p.y, p.width, p.height) or p.width < 0 or p.height < 0:
        return
    box = (p.x - p.width / 2, p.y - p.height / 2, p.x + p.width / 2, p.y + p.height / 2)
    # The halo is a wider dark rectangle under the coloured one: readable on light and dark pixels.
    halo = style.stroke + 2 * style.halo
    draw.rectangle(_grow(box, style.halo), outline=HALO, width=halo)
    draw.rectangle(box, outline=colour, width=style.stroke)


def _grow(box: tuple[float, float, float, float], by: int) -> tuple[float, float, float, float]:
    return box[0] - by, box[1] - by, box[2] + by, box[3] + by


def _draw_edge(draw: ImageDraw.ImageDraw, a: Keypoint, b: Keypoint, colour: RGB, style: _Style) -> None:
    points = [(a.x, a.y), (b.x, b.y)]
    draw.line(points, fill=HALO, width=style.stroke + 2 * style.halo)
    draw.line(points, fill=colour, width=style.stroke)


def _draw_keypoint(draw: ImageDraw.ImageDraw, kp: Keypoint, colour: RGB, style: _Style) -> None:
    r = style.radius
    draw.ellipse((kp.x - r, kp.y - r, kp.x + r, kp.y + r), fill=colour, outline=HALO, width=style.halo)


def _draw_label(
    draw: ImageDraw.ImageDraw, p: Prediction, colour: RGB, style: _Style, size: tuple[int, int]
) -> None:
    if not _finite(p.x, p.y, p.width, p.height):
        return
    text = f"{p.class_name} {p.confidence:.2f}"
    font = _font(style.font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, style.font_size // 5)
    label_w, label_h = right - left + 2 * pad, bottom - top + 2 * pad
    box_left, box_top = p.x - p.width / 2, p.y - p.height / 2
    # Above the box when there is room, else just inside its top edge; always within the image.
    x = min(max(0.0, box_left), max(0.0, size[0] - label_w))
    y = box_top - label_h if box_top - label_h >= 0 else max(0.0, box_top)
    y = min(y, max(0.0, size[1] - label_h))
    draw.rectangle((x, y, x + label_w - 1, y + label_h - 1), fill=colour)
    draw.text((x + pad - left, y + pad - top), text, font=font, fill=_text_colour(colour))


def _text_colour(background: RGB) -> RGB:
    r, g, b = background
    return HALO if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled default font (Aileron) at any size: no font files to ship in the layer.
    return ImageFont.load_default(size=size)
