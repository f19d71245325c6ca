"""The offline stack processes videos: the video queue's runner, the video workers, the HTTP API.

One stack on free ports; the demo's clip is uploaded with the aws CLI's own client (boto3), the video
function plans it into segments (two-second segments here, so the clip is two), its workers process them,
and the result, its frames and its annotated MP4 come back through the local HTTP API as a client sees them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from s3kp.local.stack import LocalStack, StackOptions
from s3kp.video_samples import sample_video
from tests.conftest import free_port

pytestmark = pytest.mark.slow
RESULT_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    saved = dict(os.environ)
    options = StackOptions(
        aws_port=free_port(),
        inference_port=free_port(),
        api_port=free_port(),
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        video_overrides=(("VIDEO_SEGMENT_SECONDS", "2"),),
    )
    running = LocalStack(options, echo=lambda line: None, report_batches=False)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)


def wait_for(api_url: str, bucket: str, key: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        call = requests.get(f"{api_url}/results/by-source", params={"bucket": bucket, "key": key}, timeout=30)
        if call.status_code == 200 and call.json()["status"] == status:
            return dict(call.json())
        time.sleep(0.5)
    raise AssertionError(f"{key} did not reach {status} within {RESULT_TIMEOUT} s")


def test_a_video_uploaded_to_the_running_stack_is_processed_by_its_video_workers(stack: LocalStack) -> None:
    assert len(stack.video_workers) == 2  # the template's MaximumConcurrency
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    key = f"{stack.resources.input_prefix}stack/clip.mp4"
    s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=sample_video())

    result = wait_for(stack.api_url, stack.resources.bucket, key, "succeeded")
    assert result["media_type"] == "video"
    assert (result["video"]["frames"], result["video"]["segments"]) == (20, 2)
    assert result["counts"]["face"] >= 20

    frames = requests.get(f"{stack.api_url}{result['links']['frames']}", params={"limit": 20}, timeout=30)
    assert frames.status_code == 200
    assert [item["frame"] for item in frames.json()["items"]] == list(range(20))

    annotated = f"{stack.api_url}{result['links']['annotated']}"
    redirect = requests.get(annotated, allow_redirects=False, timeout=30)
    assert redirect.status_code == 302
    video = requests.get(redirect.headers["Location"], timeout=30)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    assert video.headers["Content-Type"] == "video/mp4"
