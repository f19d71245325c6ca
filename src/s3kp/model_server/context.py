"""What every request handler shares: the loaded pipelines, the key check, the limits, the worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from s3kp_models import params as rf
from s3kp_models.model_runner import InferenceOutcome, run_inference
from s3kp_models.pipelines.base import KeypointPipeline
from s3kp_models.request_decoding import ImageLimits
from s3kp_models.request_errors import ModelNotFound

from s3kp.model_server.auth import KeyCheck
from s3kp.model_server.url_fetch import FetchLimits, fetch_image

T = TypeVar("T")


@dataclass
class ServerContext:
    pipelines: Mapping[str, KeypointPipeline]
    keys: KeyCheck
    threads: int
    image_limits: ImageLimits
    fetch_limits: FetchLimits
    workers: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        # `threads` worker threads and a queue: at most `threads` images are decoded and inferred at once.
        # A plain executor rather than anyio's `to_thread.run_sync` with a CapacityLimiter: the same bound,
        # and the hop is one queue put and one wake-up of the loop (in-process, the hop cost 0.12 ms a
        # request against anyio's 0.18: docs/model-server.md#overhead). Its threads start on demand and
        # exit when the executor is garbage-collected.
        self.workers = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="s3kp-inference")

    def pipeline(self, model_id: str) -> KeypointPipeline:
        try:
            return self.pipelines[model_id]
        except KeyError:
            raise ModelNotFound(model_id) from None

    async def in_worker(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.workers, work)

    async def fetch(self, url: str) -> bytes:
        # Its own (default) thread pool: a slow remote host must not hold an inference slot.
        return await anyio.to_thread.run_sync(fetch_image, url, self.fetch_limits)

    async def infer(
        self, pipeline: KeypointPipeline, image: Callable[[], bytes], params: rf.InferenceParams
    ) -> InferenceOutcome:
        return await self.in_worker(lambda: run_inference(pipeline, image, params, self.image_limits))
