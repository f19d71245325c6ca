"""`s3kp export` and `s3kp view` against the offline stack: real uploads, the real API, a real browser.

One stack (moto server, the inference server, the Lambda workers, the HTTP API) on free ports serves
the module; sample photos and a bad file are uploaded and processed by the pipeline. The browser is
Debian's headless chromium driven by its chromedriver (no browser download); the tests skip only when
chromium is not installed (`scripts/setup.sh` installs it).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from PIL import Image
from pycocotools.coco import COCO

from benchmarks.browser import chromium_installed, headless_chromium
from s3kp import samples
from s3kp.local.stack import LocalStack, StackOptions
from s3kp.results_api import ResultsApi
from s3kp.viewer.server import Viewer, ViewerServer
from s3kp.viewer.storage import storage_for
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

UPLOADS = {
    "viewer/faces 2x2.jpg": samples.sample_jpeg("faces_2x2"),
    "viewer/astronaut.jpg": samples.sample_jpeg("astronaut"),
    "viewer/people side by side.jpg": samples.sample_jpeg("people_side_by_side"),
    "viewer/bad/empty.jpg": b"",
}
RESULT_TIMEOUT = 180.0
SCREENSHOTS = ROOT / ".cache" / "screenshots"
README_SCREENSHOT = ROOT / "docs" / "viewer.png"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        aws_port=free_port(),
        inference_port=free_port(),
        api_port=free_port(),
        log_dir=tmp_path_factory.mktemp("stack-logs"),
    )
    running = LocalStack(options, echo=lambda line: None, report_batches=False)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def upload(stack: LocalStack, name: str, body: bytes) -> str:
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    key = f"{stack.resources.input_prefix}{name}"
    s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=body)
    return key


def wait_for_results(api_url: str, keys: set[str], timeout: float = RESULT_TIMEOUT) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = requests.get(f"{api_url}/results", params={"limit": 100}, timeout=30).json()["items"]
        found = [item for item in items if item["source"]["key"] in keys]
        if len(found) == len(keys):
            return found
        time.sleep(0.5)
    raise AssertionError(f"not every upload got a result within {timeout} s")


@pytest.fixture(scope="module")
def processed(stack: LocalStack) -> list[dict[str, Any]]:
    """The uploads' results (summaries), once the pipeline has recorded every one."""
    keys = {upload(stack, name, body) for name, body in UPLOADS.items()}
    results = wait_for_results(stack.api_url, keys)
    statuses = sorted(item["status"] for item in results)
    assert statuses == ["failed", "succeeded", "succeeded", "succeeded"], results
    return results


def run_export(stack: LocalStack, *arguments: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "s3kp.cli", "export", "--api-url", stack.api_url, "--json", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "\r" not in completed.stderr, "no progress bar when stderr is not a terminal"
    return dict(json.loads(completed.stdout))


# ---------------------------------------------------------------------------------------------- export
def test_export_coco_from_the_offline_stack_loads_in_pycocotools(
    stack: LocalStack, processed: list[dict[str, Any]], tmp_path: Path
) -> None:
    output = tmp_path / "results.coco.json"
    summary = run_export(stack, "--format", "coco", "--prefix", "incoming/viewer/", "-o", str(output))

    succeeded = [item for item in processed if item["status"] == "succeeded"]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(output))
    assert sorted(image["file_name"] for image in coco.loadImgs(coco.getImgIds())) == sorted(
        item["source"]["key"] for item in succeeded
    )
    assert len(coco.getAnnIds()) == sum(item["detections"] for item in succeeded) == summary["detections"]
    (face,) = coco.loadCats(coco.getCatIds())
    assert face["name"] == "face"
    assert face["keypoints"][:2] == ["right_eye", "left_eye"], "names from the results"
    assert face["skeleton"], "edges of the matching built-in layout, 1-based"
    image = next(i for i in coco.loadImgs(coco.getImgIds()) if i["file_name"].endswith("faces 2x2.jpg"))
    assert (image["width"], image["height"]) == samples.faces_2x2().size


def test_export_csv_and_jsonl_from_the_offline_stack(
    stack: LocalStack, processed: list[dict[str, Any]], tmp_path: Path
) -> None:
    csv_path, jsonl_path = tmp_path / "results.csv", tmp_path / "results.jsonl"
    run_export(stack, "--format", "csv", "--prefix", "incoming/viewer/", "-o", str(csv_path))
    run_export(stack, "--format", "jsonl", "--prefix", "incoming/viewer/", "-o", str(jsonl_path))

    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(item["keypoints"] for item in processed)
    lines = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert {line["result_id"] for line in lines} == {item["result_id"] for item in processed}
    detail = requests.get(f"{stack.api_url}/results/{lines[0]['result_id']}", timeout=30).json()
    assert lines[0] == detail, "JSONL holds the API's own detail shape"


def test_export_draws_a_progress_bar_only_on_a_terminal(
    stack: LocalStack, processed: list[dict[str, Any]], tmp_path: Path
) -> None:
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    output = str(tmp_path / "out.jsonl")
    command = [sys.executable, "-m", "s3kp.cli", "export", "--api-url", stack.api_url,
               "--format", "jsonl", "--prefix", "incoming/viewer/", "-o", output]  # fmt: skip
    try:
        completed = subprocess.run(command, cwd=ROOT, stderr=terminal, stdout=subprocess.PIPE, timeout=120)
        os.close(terminal)
        terminal = -1
        shown = b""
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := os.read(controller, 65536):
                shown += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert completed.returncode == 0
    assert b"exporting" in shown, "a progress bar on a terminal"
    assert b"4 results" in shown
    assert b"wrote 4 results" in shown


# ---------------------------------------------------------------------------------------------- viewer
@pytest.fixture(scope="module")
def viewer_url(stack: LocalStack) -> Iterator[str]:
    api = ResultsApi(stack.api_url)
    server = ViewerServer(Viewer(api, storage=storage_for(api, stack.aws_endpoint)), port=0)
    server.start()
    yield server.url
    server.stop()
    api.close()


def test_the_viewer_forwards_images_and_refuses_foreign_host_names(
    viewer_url: str, processed: list[dict[str, Any]]
) -> None:
    faces = next(item for item in processed if item["source"]["key"].endswith("faces 2x2.jpg"))
    annotated = requests.get(f"{viewer_url}/api/results/{faces['result_id']}/annotated", timeout=30)
    assert annotated.status_code == 200
    assert annotated.headers["Content-Type"] == "image/jpeg", "the presigned URL is followed by the server"
    source = requests.get(f"{viewer_url}/api/results/{faces['result_id']}/source", timeout=30)
    assert source.status_code == 200
    assert Image.open(io.BytesIO(source.content)).size == samples.faces_2x2().size

    rebound = requests.get(f"{viewer_url}/api/results", headers={"Host": "attacker.example"}, timeout=30)
    assert rebound.status_code == 403, "a DNS-rebinding page cannot read results through the viewer"
    assert requests.post(f"{viewer_url}/api/results", timeout=30).status_code == 501


def test_the_viewer_refuses_an_annotated_object_overwritten_as_html(
    stack: LocalStack, viewer_url: str, processed: list[dict[str, Any]]
) -> None:
    """GIVEN someone who may write the bucket overwrites an annotated copy with a page served as text/html
    WHEN the browser asks the viewer for that image THEN a 502 JSON message, never the page (it would run
    as the viewer's own origin, its scripts admitted by the CSP's script-src 'self')."""
    item = next(item for item in processed if item["source"]["key"].endswith("astronaut.jpg"))
    ref = item["annotated"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    original = s3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()
    page = b"<!doctype html><script src='/api/results/x/annotated'></script>"
    s3.put_object(Bucket=ref["bucket"], Key=ref["key"], Body=page, ContentType="text/html")
    try:
        redirect = requests.get(
            f"{stack.api_url}/results/{item['result_id']}/annotated", allow_redirects=False, timeout=30
        )
        stored = requests.get(redirect.headers["Location"], timeout=30)
        assert stored.headers["Content-Type"] == "text/html", "storage now serves the page"
        response = requests.get(f"{viewer_url}/api/results/{item['result_id']}/annotated", timeout=30)
    finally:
        s3.put_object(Bucket=ref["bucket"], Key=ref["key"], Body=original, ContentType="image/jpeg")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert b"<script" not in response.content
    assert "not a JPEG or PNG" in response.json()["message"]


def test_s3kp_view_serves_the_app_for_the_given_api_and_stops_on_ctrl_c(
    stack: LocalStack, processed: list[dict[str, Any]]
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "s3kp.cli", "view", "--api-url", stack.api_url, "--port", str(port),
               "--aws-endpoint-url", stack.aws_endpoint, "--no-browser"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200
        assert "text/html" in page.headers["Content-Type"]
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        config = requests.get(f"http://127.0.0.1:{port}/api/config", timeout=30).json()
        assert config["api"].startswith(stack.api_url)
        assert config["skeletons"]["face6"]["edges"], "skeletons from s3kp_core"
        listing = requests.get(f"http://127.0.0.1:{port}/api/results", params={"limit": 100}, timeout=30)
        assert {item["result_id"] for item in processed} <= {i["result_id"] for i in listing.json()["items"]}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not chromium_installed():
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them)"
        )
    profile = SCREENSHOTS.parent / f"chromium-profile-{os.getpid()}"
    driver = headless_chromium(profile, browser_logs=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_until(driver: Any, script: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never true in the page: {script}")


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


CARDS_LOADED = """
const cards = [...document.querySelectorAll('.card')];
return cards.map(card => {
  const img = card.querySelector('img');
  return {id: card.dataset.id, key: card.querySelector('.key').textContent,
          status: card.querySelector('.badge').textContent,
          thumbnail: img ? (img.complete && img.naturalWidth > 0) : null,
          reason: card.querySelector('.reason')?.textContent || null};
});
"""


def test_the_gallery_shows_every_processed_upload_with_its_thumbnail(
    browser: Any, viewer_url: str, processed: list[dict[str, Any]]
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(f"{viewer_url}/?")
    browser.get_log("browser")  # start from a clean console
    browser.get(viewer_url)
    expected = {item["result_id"]: item for item in processed}

    def shown() -> dict[str, dict[str, Any]]:
        return {card["id"]: card for card in browser.execute_script(CARDS_LOADED) if card["id"] in expected}

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cards = shown()
        if len(cards) == len(expected) and all(card["thumbnail"] is not False for card in cards.values()):
            break
        time.sleep(0.2)
    cards = shown()
    assert set(cards) == set(expected)
    for result_id, item in expected.items():
        card = cards[result_id]
        assert card["key"] == item["source"]["key"]
        assert card["status"] == item["status"]
        if item["status"] == "succeeded":
            assert card["thumbnail"] is True, f"{item['source']['key']}: thumbnail loaded"
        else:
            assert card["thumbnail"] is None
            assert card["reason"].startswith("object_empty")
    screenshot(browser, "gallery.png")
    assert console_errors(browser) == []


def test_the_detail_view_draws_the_predictions_and_toggles_the_skeleton(
    browser: Any, viewer_url: str, processed: list[dict[str, Any]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    faces = next(item for item in processed if item["source"]["key"].endswith("faces 2x2.jpg"))
    browser.set_window_size(1280, 900)
    browser.get(viewer_url)
    card = wait_until(browser, f"return document.querySelector('.card[data-id=\"{faces['result_id']}\"]')")
    card.click()
    wait_until(browser, "return document.getElementById('detail').open")
    wait_until(browser, "return document.getElementById('detail-image').dataset.loaded === 'source'")
    wait_until(browser, "return !!document.getElementById('overlay').dataset.drawn")
    drawn = json.loads(browser.execute_script("return document.getElementById('overlay').dataset.drawn"))
    assert drawn["skeleton"] is True
    with_skeleton = browser.execute_script("return document.getElementById('overlay').toDataURL()")
    raw = json.loads(browser.find_element(By.ID, "raw").get_attribute("textContent"))
    assert raw["result_id"] == faces["result_id"]
    assert len(raw["predictions"]) == faces["detections"] == 4
    path = screenshot(browser, "detail.png")
    if os.environ.get("S3KP_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, README_SCREENSHOT)

    browser.find_element(By.ID, "detail").send_keys("s")  # the keyboard shortcut
    drawn = json.loads(browser.execute_script("return document.getElementById('overlay').dataset.drawn"))
    assert drawn["skeleton"] is False
    assert browser.find_element(By.ID, "show-skeleton").is_selected() is False
    without_skeleton = browser.execute_script("return document.getElementById('overlay').toDataURL()")
    assert without_skeleton != with_skeleton, "the skeleton's lines are gone from the drawing"
    browser.find_element(By.ID, "show-skeleton").click()
    assert browser.execute_script("return document.getElementById('overlay').toDataURL()") == with_skeleton

    browser.find_element(By.ID, "detail").send_keys(Keys.ESCAPE)
    wait_until(browser, "return !document.getElementById('detail').open")
    assert console_errors(browser) == []


def test_the_gallery_works_from_the_keyboard_and_fits_a_phone(
    browser: Any, viewer_url: str, processed: list[dict[str, Any]]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(390, 844)
    browser.get(viewer_url)
    wait_until(browser, f"return document.querySelectorAll('.card').length >= {len(processed)}")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(browser, "gallery-phone.png")

    first_card = browser.execute_script("return document.querySelector('.card')")
    for _ in range(30):  # Tab through the filters to the first card, as a keyboard user does
        if browser.execute_script("return document.activeElement") == first_card:
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.execute_script("return document.activeElement") == first_card
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_until(browser, "return document.getElementById('detail').open")
    opened = browser.execute_script("return location.hash")
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    wait_until(browser, f"return location.hash !== {json.dumps(opened)}")
    wait_until(browser, "return document.getElementById('raw').textContent.includes(location.hash.slice(4))")
    wait_until(
        browser,
        "const shown = JSON.parse(document.getElementById('raw').textContent);"
        "return shown.status !== 'succeeded' || !!document.getElementById('detail-image').dataset.loaded",
    )
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(browser, "detail-phone.png")
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait_until(browser, "return !document.getElementById('detail').open")
    assert console_errors(browser) == []


def test_a_new_upload_appears_while_the_gallery_is_open(
    browser: Any, viewer_url: str, stack: LocalStack, processed: list[dict[str, Any]]
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(viewer_url)
    wait_until(browser, f"return document.querySelectorAll('.card').length >= {len(processed)}")
    key = upload(stack, "viewer/late arrival.jpg", samples.sample_jpeg("grace_hopper"))
    card = wait_until(
        browser,
        f"return [...document.querySelectorAll('.card .key')].find(k => k.textContent === {json.dumps(key)})",
        timeout=RESULT_TIMEOUT,
    )
    assert browser.execute_script("return document.querySelector('.card .key')") == card, "on top"
    assert console_errors(browser) == []


# ---------------------------------------------------------------------------------------------- videos
@pytest.fixture(scope="module")
def processed_video(stack: LocalStack) -> dict[str, Any]:
    """The demo's clip (two people, then four faces), once the video function has finished it."""
    from s3kp.video_samples import sample_video

    key = upload(stack, "videos/people and faces.mp4", sample_video())
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        found = wait_for_results(stack.api_url, {key})[0]
        if found["status"] != "processing":
            assert found["status"] == "succeeded", found
            return found
        time.sleep(0.5)
    raise AssertionError("the video was not finished in time")


def test_export_writes_each_sampled_frame_of_a_video(
    stack: LocalStack, processed_video: dict[str, Any], tmp_path: Path
) -> None:
    coco_path, csv_path = tmp_path / "video.coco.json", tmp_path / "video.csv"
    run_export(stack, "--format", "coco", "--prefix", "incoming/videos/", "-o", str(coco_path))
    run_export(stack, "--format", "csv", "--prefix", "incoming/videos/", "-o", str(csv_path))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_path))
    frames = processed_video["video"]["frames"]
    names = sorted((image["s3kp"]["frame"], image["file_name"]) for image in coco.loadImgs(coco.getImgIds()))
    key = processed_video["source"]["key"]
    assert names == [(n, f"{key}#frame={n}") for n in range(frames)]
    assert len(coco.getAnnIds()) == processed_video["detections"]
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == processed_video["keypoints"]
    assert {row["frame"] for row in rows} == {str(n) for n in range(frames)}
    assert {row["time_seconds"] for row in rows if row["frame"] == "3"} == {"0.6"}


def test_the_viewer_plays_a_video_and_its_scrubber_shows_each_frames_keypoints(
    browser: Any, viewer_url: str, stack: LocalStack, processed_video: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    result_id = processed_video["result_id"]
    frames = processed_video["video"]["frames"]
    browser.set_window_size(1280, 900)
    browser.get(f"{viewer_url}/#/r/{result_id}")
    wait_until(browser, "return document.getElementById('detail').open")
    # Chromium decodes the annotated H.264 MP4: its first frame is shown at its real size.
    wait_until(browser, "const v = document.getElementById('detail-video'); return v.readyState >= 2")
    size = browser.execute_script(
        "const v = document.getElementById('detail-video'); return [v.videoWidth, v.videoHeight]"
    )
    assert size == [processed_video["video"]["width"], processed_video["video"]["height"]]
    assert browser.execute_script("return document.getElementById('frame').max") == str(frames - 1)

    # Scrub to frame 12 (the faces scene): the player seeks there and the side panel lists its faces, as
    # the API has them.
    (frame_12,) = requests.get(
        f"{stack.api_url}/results/{result_id}/frames", params={"offset": 12, "limit": 1}, timeout=30
    ).json()["items"]
    assert frame_12["predictions"]
    browser.execute_script(
        "const s = document.getElementById('frame'); s.value = '12'; s.dispatchEvent(new Event('input'))"
    )
    wait_until(browser, "return document.getElementById('frame-detections').dataset.shown === '12'")
    listed = browser.find_element(By.ID, "frame-detections").text
    assert listed.count("face ") == len(frame_12["predictions"]), listed
    first = frame_12["predictions"][0]
    assert f"face {first['confidence']:.2f}" in listed
    for keypoint in first["keypoints"]:
        assert f"{keypoint['name']} {keypoint['confidence']:.2f}" in listed, "names with confidences"
    wait_until(
        browser, "const v = document.getElementById('detail-video'); return !v.seeking && v.readyState >= 2"
    )
    assert browser.execute_script(
        "return document.getElementById('detail-video').currentTime"
    ) == pytest.approx(2.5)
    assert browser.find_element(By.ID, "frame-label").text.startswith("13 / 20")

    browser.find_element(By.ID, "detail").send_keys(",")  # one frame back, from the keyboard
    wait_until(browser, "return document.getElementById('frame-detections').dataset.shown === '11'")
    screenshot(browser, "video-detail.png")
    browser.find_element(By.ID, "detail").send_keys(Keys.ESCAPE)
    wait_until(browser, "return !document.getElementById('detail').open")
    assert console_errors(browser) == []


def test_a_video_card_shows_its_first_frame_as_thumbnail(
    browser: Any, viewer_url: str, processed_video: dict[str, Any]
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(viewer_url)
    selector = f'.card[data-id="{processed_video["result_id"]}"] img'
    loaded = "return img && img.complete && img.naturalWidth > 0"
    wait_until(browser, f"const img = document.querySelector({json.dumps(selector)}); {loaded}")
    assert console_errors(browser) == []
