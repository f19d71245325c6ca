"""The memory budget shared by records processed in parallel, and how decoding uses it.

No test here measures time: a thread "waits" when the budget says it does (`waiting`), and the threads
are only ever waited for with generous timeouts that fail the test rather than slow it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from PIL import Image, ImageFile
from s3kp_core.imaging import decode, prepare_for_inference
from s3kp_core.memory import MemoryBudget

from s3kp import samples

MIB = 2**20
PATIENCE = 30.0  # seconds before a test gives up on a thread (a hang, never an expected wait)


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    deadline = threading.Timer(PATIENCE, done.set)
    deadline.start()
    try:
        while not condition():
            assert not done.wait(0.005), "the condition never became true"
    finally:
        deadline.cancel()


def in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# --- the budget -----------------------------------------------------------------------------------


def test_a_reservation_that_does_not_fit_waits_until_another_is_released() -> None:
    budget = MemoryBudget(100)
    first = budget.reservation()
    first.acquire(60)
    second = budget.reservation()

    waiter = in_thread(lambda: second.acquire(60))
    wait_until(lambda: budget.waiting == 1)
    assert second.held == 0
    assert budget.held == 60

    first.release()
    waiter.join(PATIENCE)

    assert not waiter.is_alive()
    assert (second.held, budget.held, budget.peak, budget.waits) == (60, 60, 60, 1)


def test_shrinking_makes_room_for_a_waiter() -> None:
    budget = MemoryBudget(100)
    decoding = budget.reservation()
    decoding.acquire(90)
    other = budget.reservation()
    waiter = in_thread(lambda: other.acquire(50))
    wait_until(lambda: budget.waiting == 1)

    decoding.shrink_to(40)  # the decoded pixels are freed; the reduced image is kept
    waiter.join(PATIENCE)

    assert not waiter.is_alive()
    assert (budget.held, budget.peak) == (90, 90)


def test_a_reservation_larger_than_the_budget_goes_alone_and_only_alone() -> None:
    budget = MemoryBudget(100)
    small = budget.reservation()
    small.acquire(10)
    huge = budget.reservation()
    waiter = in_thread(lambda: huge.acquire(150))
    wait_until(lambda: budget.waiting == 1)

    small.release()
    waiter.join(PATIENCE)

    assert not waiter.is_alive()
    assert (huge.held, budget.peak) == (150, 150)


def test_without_capacity_nothing_waits_but_the_figures_are_kept() -> None:
    budget = MemoryBudget(None)
    with budget.reservation() as one, budget.reservation() as two:
        one.acquire(10**12)
        two.acquire(10**12)
        assert budget.held == 2 * 10**12
    assert (budget.held, budget.waits, budget.peak) == (0, 0, 2 * 10**12)


def test_a_reservation_acquires_once_and_leaving_its_block_releases_it() -> None:
    budget = MemoryBudget(100)
    with budget.reservation() as reservation:
        reservation.acquire(30)
        with pytest.raises(RuntimeError):
            reservation.acquire(10)
        reservation.shrink_to(50)  # never grows by shrinking
        assert reservation.held == 30
    assert budget.held == 0


# --- decoding with a reservation ------------------------------------------------------------------


@dataclass
class Loads:
    """Hooks run around every pixel decode (Pillow's `ImageFile.load`), in the decoding thread."""

    before: list[Callable[[], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    hooks = Loads()
    load = ImageFile.ImageFile.load

    def spied(self: ImageFile.ImageFile) -> object:
        if not self.tile:  # loaded already: no pixel is decoded
            return load(self)
        for hook in hooks.before:
            hook()
        try:
            return load(self)
        finally:
            for hook in hooks.after:
                hook()

    monkeypatch.setattr(ImageFile.ImageFile, "load", spied)
    return hooks


def rgba_png(width: int, height: int) -> bytes:
    return samples.encode(Image.new("RGBA", (width, height), (200, 40, 40, 128)), "PNG", compress_level=1)


def test_decode_reserves_its_peak_before_any_pixel_and_keeps_only_the_image_it_returns(loads: Loads) -> None:
    """GIVEN a 6000x4000 RGBA PNG decoded for a 1024 px draft (box-reduced by 5 while converted)
    THEN before its pixels are decoded the reservation holds the RGBA pixels (4 B) plus the reduced RGB
    output, twice (a PNG's EXIF orientation is known only after its pixels: an upright copy is counted),
    and afterwards only the returned 1200x800 RGB image (4 B a pixel in Pillow)."""
    budget = MemoryBudget(None)
    reservation = budget.reservation()
    held_at_load: list[int] = []
    loads.before.append(lambda: held_at_load.append(budget.held))

    decoded = decode(rgba_png(6000, 4000), max_pixels=30_000_000, draft_to=1024, reservation=reservation)

    assert decoded.image.size == (1200, 800)
    assert held_at_load == [6000 * 4000 * 4 + 2 * 1200 * 800 * 4]
    assert reservation.held == budget.held == 1200 * 800 * 4
    reservation.release()
    assert budget.held == 0


def test_a_budget_lets_one_large_decode_run_at_a_time(loads: Loads) -> None:
    """GIVEN two threads preparing 24 MP RGBA PNGs (96 MB of pixels each) against a 150 MB budget
    WHEN both start THEN the second decode waits for the first one's pixels to be freed: the two never
    decode at once. (The first decode holds on until the second is seen waiting on the budget, or
    decoding beside it, so an unbudgeted run would always be caught overlapping.)"""
    budget = MemoryBudget(150 * 10**6)
    data = rgba_png(6000, 4000)
    decoding = 0
    most = 0
    first = threading.Event()
    lock = threading.Lock()

    def on_load() -> None:
        nonlocal decoding, most
        with lock:
            decoding += 1
            most = max(most, decoding)
            leader = not first.is_set()
            first.set()
        if leader:
            wait_until(lambda: budget.waiting == 1 or decoding == 2)

    def done() -> None:
        nonlocal decoding
        with lock:
            decoding -= 1

    loads.before.append(on_load)
    loads.after.append(done)

    def prepare() -> None:
        with budget.reservation() as reservation:
            prepare_for_inference(data, max_side=1024, max_pixels=30_000_000, reservation=reservation)

    threads = [in_thread(prepare) for _ in range(2)]
    for thread in threads:
        thread.join(PATIENCE)

    assert not any(thread.is_alive() for thread in threads)
    assert most == 1
    assert budget.waits == 1
    assert budget.peak <= 150 * 10**6
    assert budget.held == 0


# --- freed pixels leave the process ---------------------------------------------------------------

# A fresh interpreter: the malloc setting is process-wide. Four threads decode one large PNG each, one
# after the other (as a budget lets them); the growth of the resident set is printed in MiB.
ARENA_PROBE = """
import io, re, sys, threading
from PIL import Image
from s3kp_core.imaging import decode
from s3kp_core.memory import unmap_large_blocks_on_free

def resident_mib():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\\s+(\\d+) kB", status.read()).group(1)) // 1024

set_up = unmap_large_blocks_on_free() if sys.argv[1] == "on" else None
buffer = io.BytesIO()
Image.new("RGBA", (6000, 4000), (200, 40, 40, 128)).save(buffer, "PNG", compress_level=1)
data = buffer.getvalue()
turn = threading.Lock()
before = resident_mib()

def work():
    with turn:
        decode(data, max_pixels=30_000_000, draft_to=1024)

threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(set_up, resident_mib() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_pixels_freed_in_any_thread_leave_the_process() -> None:
    """GIVEN `unmap_large_blocks_on_free` WHEN four threads decode a 24 MP RGBA PNG (96 MB of pixels)
    each, one at a time THEN the process keeps under a quarter of one image: what a budget counts as
    freed is freed. (With glibc's default mmap threshold it kept 118 MiB here: the blocks of later
    decodes came from thread heaps that keep their pages.)"""
    completed = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, "on"], capture_output=True, text=True, check=True, timeout=120
    )

    set_up, grown_mib = completed.stdout.split()
    assert set_up == "True"
    assert int(grown_mib) < 96 / 4
