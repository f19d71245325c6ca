"""Peak memory of preparing large images: what decides whether a 1 GB ingest function survives them.

Each case runs in a fresh interpreter, its peak read from /proc/self/status. The bound: the decoded pixels in
the file's own mode, which cannot be avoided, plus a fixed allowance for the strips and the reduced
output; no full-size converted copy may exist (the old path made two or three of them).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from s3kp_core.image_modes import bytes_per_pixel

WIDTH, HEIGHT = 6000, 4000  # 24 MP
ALLOWANCE_BYTES = 40 * 2**20

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest, hundreds of MiB) through
# fork and exec, which would hide any growth below it; VmHWM is the new program's own peak.
PROBE = textwrap.dedent(
    """
    import re, sys
    from s3kp_core.imaging import prepare_for_inference
    def peak():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) * 1024
    data = open(sys.argv[1], "rb").read()
    before = peak()
    prepared, image = prepare_for_inference(data, max_side=1024, max_pixels=100_000_000, decode_side=1024)
    print(peak() - before, prepared.original_width, prepared.sent_width, image.mode)
    """
)


def _transparent() -> Image.Image:
    return Image.new("RGBA", (WIDTH, HEIGHT), (200, 40, 40, 128))


def _sixteen_bit_grey() -> Image.Image:
    return Image.new("I;16", (WIDTH, HEIGHT), 3000)


def _palette() -> Image.Image:
    return Image.new("RGB", (WIDTH, HEIGHT), (10, 200, 30)).convert("P")


CASES: dict[str, Callable[[], Image.Image]] = {
    "rgba": _transparent,
    "16-bit grey": _sixteen_bit_grey,
    "palette": _palette,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_24_megapixel_png_peaks_at_its_decoded_pixels_plus_a_fixed_allowance(
    name: str, tmp_path: Path
) -> None:
    """GIVEN a 24 MP PNG (a small file: flat colour) WHEN prepared for inference THEN the process grows
    by less than its decoded pixels in their own mode + 40 MiB, and the result is RGB at 1024 px."""
    image = CASES[name]()
    decoded_bytes = WIDTH * HEIGHT * bytes_per_pixel(image.mode)
    path = tmp_path / "large.png"
    image.save(path, compress_level=1)
    del image

    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True, timeout=120
    )

    grown, original_width, sent_width, mode = completed.stdout.split()
    assert (int(original_width), int(sent_width), mode) == (WIDTH, 1024, "RGB")
    assert int(grown) < decoded_bytes + ALLOWANCE_BYTES, (
        f"peak grew by {int(grown) >> 20} MiB for {decoded_bytes >> 20} MiB of decoded pixels"
    )
