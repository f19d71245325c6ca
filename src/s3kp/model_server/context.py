"""What every request handler shares: the loaded pipelines, the key check, the limits, the worker threads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from s3kp.model_server import params as rf
from s3kp.model_server.auth import KeyCheck
from s3kp.model_server.http_errors import ModelNotFound
from s3kp.model_server.model_runner import InferenceOutcome, run_inference
from s3kp.model_server.pipelines.base import KeypointPipeline
from s3kp.model_server.request_decoding import ImageLimits
from s3kp.model_server.url_fetch import FetchLimits, fetch_image

T = TypeVar("T")


@dataclass
class ServerContext:
    pipelines: Mapping[str, KeypointPipeline]
    keys: KeyCheck
    threads: int
    image_limits: ImageLimits
    fetch_limits: FetchLimits
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.threads)

    def pipeline(self, model_id: str) -> KeypointPipeline:
        try:
            return self.pipelines[model_id]
        except KeyError:
            raise ModelNotFound(model_id) from None

    async def in_worker(self, work: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)

    async def fetch(self, url: str) -> bytes:
        # Its own (default) thread pool: a slow remote host must not hold an inference slot.
        return await anyio.to_thread.run_sync(fetch_image, url, self.fetch_limits)

    async def infer(
        self, pipeline: KeypointPipeline, image: Callable[[], bytes], params: rf.InferenceParams
    ) -> InferenceOutcome:
        return await self.in_worker(lambda: run_inference(pipeline, image, params, self.image_limits))
