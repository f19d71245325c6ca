"""Inference runs on the server's `threads` worker threads: requests overlap up to that many and never
more, and the event loop stays free to answer others while they work."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx  # what starlette's TestClient is built on
from s3kp_models.pipelines.base import Detection, RGBImage

from s3kp import samples
from s3kp.model_server.app import create_app
from tests.unit.model_server.fake_pipeline import FakePipeline

B64 = base64.b64encode(samples.encode(samples.astronaut().resize((64, 48)))).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WORK_SECONDS = 0.05


@dataclass
class SlowPipeline(FakePipeline):
    """Takes WORK_SECONDS a call (sleeping, as TFLite releases the GIL) and records who ran it."""

    running: int = 0
    peak: int = 0
    threads: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def predict(self, image: RGBImage, **options: Any) -> list[Detection]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        time.sleep(WORK_SECONDS)
        with self.lock:
            self.running -= 1
        return super().predict(image, **options)


async def _post_all(pipeline: SlowPipeline, *, threads: int, requests: int) -> list[int]:
    app = create_app({"fake/1": pipeline}, threads=threads)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        responses = await asyncio.gather(
            *(client.post("/fake/1?api_key=k", content=B64, headers=FORM) for _ in range(requests))
        )
    return [response.status_code for response in responses]


def test_requests_overlap_up_to_the_thread_count_and_never_more() -> None:
    pipeline = SlowPipeline()
    assert asyncio.run(_post_all(pipeline, threads=2, requests=6)) == [200] * 6
    assert pipeline.peak == 2
    assert len(pipeline.calls) == 6


def test_inference_never_runs_on_the_event_loop_thread() -> None:
    pipeline = SlowPipeline()
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop on this thread
    assert asyncio.run(_post_all(pipeline, threads=3, requests=3)) == [200] * 3
    assert pipeline.threads
    assert loop_thread not in pipeline.threads


@dataclass
class GatedPipeline(FakePipeline):
    """Holds its worker until the test lets it go."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def predict(self, image: RGBImage, **options: Any) -> list[Detection]:
        self.started.set()
        assert self.release.wait(timeout=10)
        return super().predict(image, **options)


def test_the_loop_answers_health_while_every_worker_is_busy() -> None:
    pipeline = GatedPipeline()

    async def scenario() -> None:
        app = create_app({"fake/1": pipeline}, threads=1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            inference = asyncio.ensure_future(client.post("/fake/1?api_key=k", content=B64, headers=FORM))
            assert await asyncio.to_thread(pipeline.started.wait, 10)
            assert (await client.get("/health")).status_code == 200
            assert not inference.done()
            pipeline.release.set()
            assert (await inference).status_code == 200

    asyncio.run(scenario())
