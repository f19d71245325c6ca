"""Peak memory of preparing large images: what decides whether a 1 GB ingest function survives them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

MEGAPIXELS = 40
# Decoded RGBA pixels are 4 bytes each (160 MB here) and cannot be avoided; everything after them must
# work on a reduced image. Flattening at full size on the old path cost about 16 bytes per pixel.
LIMIT_BYTES_PER_PIXEL = 7

PROBE = textwrap.dedent(
    """
    import resource, sys
    from s3kp_core.imaging import prepare_for_inference
    data = open(sys.argv[1], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prepared, image = prepare_for_inference(data, max_side=1024, max_pixels=100_000_000, decode_side=2048)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024, prepared.original_width, prepared.sent_width, image.mode)
    """
)


@pytest.fixture(scope="module")
def large_transparent_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    width = 8000
    height = MEGAPIXELS * 1_000_000 // width
    image = Image.new("RGBA", (width, height), (200, 40, 40, 128))
    path = tmp_path_factory.mktemp("large") / "transparent.png"
    image.save(path, compress_level=1)
    return path


def test_a_40_megapixel_transparent_png_has_a_bounded_peak(large_transparent_png: Path) -> None:
    """GIVEN a 40 MP RGBA PNG (a small file: flat colour) WHEN prepared for inference THEN the process
    grows by less than 7 bytes per pixel, and the result is RGB at the requested sizes."""
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(large_transparent_png)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    grown, original_width, sent_width, mode = completed.stdout.split()
    assert (int(original_width), int(sent_width), mode) == (8000, 1024, "RGB")
    assert int(grown) < LIMIT_BYTES_PER_PIXEL * MEGAPIXELS * 1_000_000, f"peak grew by {int(grown) >> 20} MiB"
