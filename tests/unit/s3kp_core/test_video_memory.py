"""Peak memory of sampling an 8K video: the decoder's own frames, plus nothing of full size.

Each run is a fresh interpreter whose peak (VmHWM, see test_imaging_memory.py) is read before and after.
The floor is PyAV decoding the same frames with the same threading and converting nothing; sampling, as a
segment does it (the probe's facts come with its task, made by the planner in another invocation), may add
the reduced frames and a fixed allowance, never a full-size RGB copy (7680×4320×3 = 95 MiB) nor a decoded
frame held beyond the decoder's own (50 MiB in yuv420p).
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest
from PIL import Image
from s3kp_core.video_decode import probe
from s3kp_core.video_tasks import ProbeFacts

from s3kp.video_samples import encode_video

FULL_RGB_BYTES = 7680 * 4320 * 3
ALLOWANCE_BYTES = 32 * 2**20

PROBE = textwrap.dedent(
    """
    import io, re, sys
    from fractions import Fraction
    import av
    from s3kp_core.video_decode import sample_frames
    from s3kp_core.video_tasks import ProbeFacts
    import msgspec
    def peak():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) * 1024
    data = open(sys.argv[1], "rb").read()
    before = peak()
    if sys.argv[2] == "floor":
        with av.open(io.BytesIO(data), format="mov") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
    else:
        video = msgspec.json.decode(sys.argv[3], type=ProbeFacts).probe()
        samples = sample_frames(io.BytesIO(data), video, fps=Fraction(2), first=0, stop=100, max_side=1024)
        frames = sum(1 for _ in samples)
    print(peak() - before, frames)
    """
)


def _peak(path: Path, mode: str) -> tuple[int, int]:
    facts = msgspec.json.encode(ProbeFacts.of(probe(io.BytesIO(path.read_bytes()), max_seconds=60))).decode()
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), mode, facts], capture_output=True, text=True, check=True
    )
    growth, frames = completed.stdout.split()
    return int(growth), int(frames)


@pytest.mark.slow
def test_sampling_an_8k_video_peaks_at_the_decoders_own_frames_plus_a_fixed_allowance(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (7680, 4320), (40 * n, 90, 200 - 40 * n)) for n in range(4)]
    path = tmp_path / "8k.mp4"
    path.write_bytes(encode_video(frames, fps=2))
    floor, decoded = _peak(path, "floor")
    ours, sampled = _peak(path, "sample")
    assert (decoded, sampled) == (4, 4)
    assert ours <= floor + ALLOWANCE_BYTES, (ours / 2**20, floor / 2**20)
    assert ALLOWANCE_BYTES < FULL_RGB_BYTES / 2  # a full-size RGB copy could not hide in the allowance
