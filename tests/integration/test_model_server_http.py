"""The real inference server (`s3kp model-server`, real MediaPipe models) over real HTTP.

Every bad input and every error status of the contract, the image formats, `image=<url>` against a
local file server, and concurrent requests.
"""

from __future__ import annotations

import base64
import http.server
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from s3kp import samples
from tests.conftest import MODEL_SERVER_API_KEY, running_model_server

TIMEOUT = 60
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ASTRONAUT = samples.sample_jpeg("astronaut")


def post_b64(url: str, data: bytes, query: str = "", model: str = "faces/1") -> requests.Response:
    return requests.post(
        f"{url}/{model}?api_key={MODEL_SERVER_API_KEY}{query}",
        data=base64.b64encode(data),
        headers=FORM,
        timeout=TIMEOUT,
    )


# --- the happy path ---------------------------------------------------------------------------------------


def test_astronaut_face_with_six_named_keypoints(model_server_url: str) -> None:
    response = post_b64(model_server_url, ASTRONAUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {"width": 512, "height": 512}
    [face] = body["predictions"]
    assert face["class"] == "face"
    assert 150 < face["x"] < 300
    assert 60 < face["y"] < 200  # the face is in the upper half of the picture
    assert [k["class_name"] for k in face["keypoints"]][:3] == ["right_eye", "left_eye", "nose_tip"]


def test_multipart_upload_gives_the_same_detection(model_server_url: str) -> None:
    response = requests.post(
        f"{model_server_url}/faces/1",
        params={"api_key": MODEL_SERVER_API_KEY},
        files={"file": ("astronaut.jpg", ASTRONAUT, "image/jpeg")},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_pose_model_finds_a_person_with_33_landmarks(model_server_url: str) -> None:
    response = post_b64(model_server_url, samples.sample_jpeg("people_side_by_side"), model="pose/1")
    assert response.status_code == 200, response.text
    people = response.json()["predictions"]
    assert people
    assert all(p["class"] == "person" for p in people)
    assert len(people[0]["keypoints"]) == 33


def _corners(p: dict[str, float]) -> tuple[float, float, float, float]:
    return (
        p["x"] - p["width"] / 2,
        p["y"] - p["height"] / 2,
        p["x"] + p["width"] / 2,
        p["y"] + p["height"] / 2,
    )


def _contains(box: tuple[float, float, float, float], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def test_side_by_side_people_get_separate_boxes_each_around_its_own_face(model_server_url: str) -> None:
    """GIVEN the astronaut and Grace Hopper side by side (Grace's unseen elbows and hips land on the
    astronaut's side and below the frame) WHEN both models run THEN each person box stays in its own
    photo, the boxes barely overlap, and each holds exactly one whole face of those the full-range face
    model finds."""
    image = samples.sample_jpeg("people_side_by_side")
    people = post_b64(model_server_url, image, model="pose/1").json()["predictions"]
    faces = post_b64(model_server_url, image, model="faces/2").json()["predictions"]
    assert len(people) == len(faces) == 2

    (a_left, a_top, a_right, a_bottom), (b_left, b_top, b_right, b_bottom) = (_corners(p) for p in people)
    overlap = max(0.0, min(a_right, b_right) - max(a_left, b_left)) * max(
        0.0, min(a_bottom, b_bottom) - max(a_top, b_top)
    )
    smaller = min(p["width"] * p["height"] for p in people)
    assert overlap / smaller < 0.05
    astronaut = samples.astronaut()
    seam = astronaut.width * samples.people_side_by_side().height / astronaut.height  # where the photos meet
    left_person, right_person = sorted((_corners(p) for p in people), key=lambda box: box[0])
    assert left_person[2] < seam + 16
    assert right_person[0] > seam - 16
    for person in people:
        box = _corners(person)
        assert sum(_contains(box, face["x"], face["y"]) for face in faces) == 1
        face = next(f for f in faces if _contains(box, f["x"], f["y"]))
        left, top, right, bottom = _corners(face)
        assert _contains(box, left, top)  # the whole face, not a part of it
        assert _contains(box, right, bottom)


def test_format_image_returns_the_annotated_jpeg(model_server_url: str) -> None:
    response = post_b64(model_server_url, ASTRONAUT, "&format=image")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    drawn = Image.open(io.BytesIO(response.content))
    assert (drawn.format, drawn.size) == ("JPEG", (512, 512))
    original = samples.astronaut()
    assert drawn.tobytes() != original.tobytes()  # something was drawn


def test_image_and_json_carries_a_visualization(model_server_url: str) -> None:
    body = post_b64(model_server_url, ASTRONAUT, "&format=image_and_json").json()
    assert body["predictions"]
    assert Image.open(io.BytesIO(base64.b64decode(body["visualization"]))).format == "JPEG"


# --- bad and unusual inputs -------------------------------------------------------------------------------

EXPECTED_STATUS = {"zero_byte": 400, "truncated_jpeg": 400, "pdf_named_jpg": 400, "decompression_bomb": 413}


@pytest.mark.parametrize("name", sorted(samples.BAD_INPUTS))
def test_bad_inputs_are_answered_never_crash(model_server_url: str, name: str) -> None:
    _, factory = samples.BAD_INPUTS[name]
    response = post_b64(model_server_url, factory())
    expected = EXPECTED_STATUS.get(name, 200)  # a 1x1 image is valid: no faces
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json()["predictions"] == []
    else:
        assert response.json()["message"]
    assert requests.get(f"{model_server_url}/health", timeout=5).status_code == 200  # still alive


@pytest.mark.parametrize("name", sorted(samples.UNUSUAL_IMAGES))
def test_unusual_images_are_processed(model_server_url: str, name: str) -> None:
    _, factory = samples.UNUSUAL_IMAGES[name]
    response = post_b64(model_server_url, factory())
    assert response.status_code == 200, response.text
    width, height = response.json()["image"]["width"], response.json()["image"]["height"]
    assert width > 1
    assert height > 1


def test_exif_rotated_photo_is_detected_upright(model_server_url: str) -> None:
    """GIVEN pixels stored sideways with EXIF orientation WHEN inferred THEN boxes fit the upright photo."""
    upright = post_b64(model_server_url, ASTRONAUT).json()
    rotated = post_b64(model_server_url, samples.exif_rotated_jpeg()).json()
    assert rotated["image"] == upright["image"]
    assert len(rotated["predictions"]) == 1
    assert rotated["predictions"][0]["x"] == pytest.approx(upright["predictions"][0]["x"], abs=15)
    assert rotated["predictions"][0]["y"] == pytest.approx(upright["predictions"][0]["y"], abs=15)


# --- error statuses ---------------------------------------------------------------------------------------


def test_wrong_key_is_401(model_server_url: str) -> None:
    response = requests.post(f"{model_server_url}/faces/1?api_key=wrong", data=b"x", headers=FORM, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized api_key"}


def test_missing_key_is_400(model_server_url: str) -> None:
    response = requests.post(f"{model_server_url}/faces/1", data=b"x", headers=FORM, timeout=10)
    assert response.status_code == 400
    assert "API key" in response.json()["message"]


def test_bearer_key_is_accepted(model_server_url: str) -> None:
    response = requests.post(
        f"{model_server_url}/faces/1",
        data=base64.b64encode(ASTRONAUT),
        headers=FORM | {"Authorization": f"Bearer {MODEL_SERVER_API_KEY}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200


def test_unknown_model_is_404(model_server_url: str) -> None:
    response = post_b64(model_server_url, ASTRONAUT, model="cats/7")
    assert response.status_code == 404
    assert "cats/7" in response.json()["message"]


def test_missing_content_type_is_400(model_server_url: str) -> None:
    response = requests.post(
        f"{model_server_url}/faces/1?api_key={MODEL_SERVER_API_KEY}",
        data=base64.b64encode(ASTRONAUT),
        timeout=10,
    )
    assert response.status_code == 400
    assert "Content-Type" in response.json()["message"]


def test_body_over_20_mb_is_413(model_server_url: str) -> None:
    response = requests.post(
        f"{model_server_url}/faces/1?api_key={MODEL_SERVER_API_KEY}",
        data=b"A" * (20 * 1024 * 1024 + 4),
        headers=FORM,
        timeout=TIMEOUT,
    )
    assert response.status_code == 413
    assert "20 MB" in response.json()["message"]


@pytest.mark.parametrize("query", ["&confidence=lots", "&max_detections=0", "&format=gif"])
def test_malformed_parameter_is_422_with_detail(model_server_url: str, query: str) -> None:
    response = post_b64(model_server_url, ASTRONAUT, query)
    assert response.status_code == 422
    assert response.json()["detail"]


# --- only this machine ------------------------------------------------------------------------------------


def test_a_rebinding_page_is_refused(model_server_url: str) -> None:
    """GIVEN a page whose name now resolves to 127.0.0.1 WHEN its requests reach the server (with its own
    name as Host) THEN 403 on every route, before the key or the body is looked at; loopback names
    (with or without the port) are served."""
    port = model_server_url.rsplit(":", 1)[1]
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
        assert (
            requests.get(f"{model_server_url}/health", headers={"Host": host}, timeout=10).status_code == 403
        )
        inference = requests.post(
            f"{model_server_url}/faces/1?api_key={MODEL_SERVER_API_KEY}",
            data=base64.b64encode(ASTRONAUT),
            headers={**FORM, "Host": host},
            timeout=TIMEOUT,
        )
        assert inference.status_code == 403, host
        assert "only this machine" in inference.json()["message"]
    for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}"):
        assert (
            requests.get(f"{model_server_url}/health", headers={"Host": host}, timeout=10).status_code == 200
        )


def test_a_page_elsewhere_is_refused_and_granted_no_cors(model_server_url: str) -> None:
    """GIVEN a page on another site WHEN it posts an image (a form needs no preflight) or sends a
    preflight THEN 403 without CORS headers: it cannot use the server, let alone read its answers."""
    foreign = {"Origin": "https://attacker.example"}
    posted = requests.post(
        f"{model_server_url}/faces/1?api_key={MODEL_SERVER_API_KEY}",
        data=base64.b64encode(ASTRONAUT),
        headers={**FORM, **foreign},
        timeout=TIMEOUT,
    )
    preflight = requests.options(
        f"{model_server_url}/infer/keypoints_detection",
        headers={**foreign, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    for refused in (posted, preflight):
        assert refused.status_code == 403
        assert not [name for name in refused.headers if name.lower().startswith("access-control-")]


# --- image=<url> ------------------------------------------------------------------------------------------

HOSTED: dict[str, tuple[str, bytes]] = {
    "/astronaut.jpg": ("image/jpeg", ASTRONAUT),
    "/page.html": ("text/html", b"<html><body>hello</body></html>"),
}


class _ImageHost(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # roboflow-python checks the URL with HEAD first
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, *, with_body: bool) -> None:
        content_type, body = HOSTED.get(self.path, ("text/plain", b""))
        self.send_response(200 if self.path in HOSTED else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def lan_model_server_url() -> Iterator[str]:
    """A second server that may fetch from loopback and private hosts, as the image host here is on
    127.0.0.1 (turned on through the environment variable, the way a shell or CI would)."""
    with running_model_server({"S3KP_MODEL_SERVER_ALLOW_PRIVATE_URLS": "1"}) as url:
        yield url


def test_image_url_on_loopback_is_refused_by_default(model_server_url: str, image_host: str) -> None:
    """GIVEN a server started without --allow-private-image-urls WHEN image=<url> names a loopback host
    (say the local moto server) THEN it answers 400 naming the option, without fetching."""
    response = requests.post(
        f"{model_server_url}/faces/1",
        params={"api_key": MODEL_SERVER_API_KEY, "image": f"{image_host}/astronaut.jpg"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "127.0.0.1 resolves to a loopback, private, link-local" in response.json()["message"]
    assert "--allow-private-image-urls" in response.json()["message"]


def test_image_url_is_fetched_with_an_empty_post_body(lan_model_server_url: str, image_host: str) -> None:
    """roboflow-python's hosted-image call: `&image=<quoted url>` and a POST without a body."""
    response = requests.post(
        f"{lan_model_server_url}/faces/1",
        params={"api_key": MODEL_SERVER_API_KEY, "image": f"{image_host}/astronaut.jpg"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_image_url_works_with_get(lan_model_server_url: str, image_host: str) -> None:
    response = requests.get(
        f"{lan_model_server_url}/faces/1",
        params={"api_key": MODEL_SERVER_API_KEY, "image": f"{image_host}/astronaut.jpg"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "expected"), [("/page.html", "not an image"), ("/missing.jpg", "HTTP 404")])
def test_image_url_that_is_not_an_image_is_400(
    lan_model_server_url: str, image_host: str, path: str, expected: str
) -> None:
    response = requests.post(
        f"{lan_model_server_url}/faces/1",
        params={"api_key": MODEL_SERVER_API_KEY, "image": f"{image_host}{path}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert expected in response.json()["message"]


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/a.jpg"])
def test_image_url_with_another_scheme_is_400(model_server_url: str, url: str) -> None:
    response = requests.post(
        f"{model_server_url}/faces/1", params={"api_key": MODEL_SERVER_API_KEY, "image": url}, timeout=10
    )
    assert response.status_code == 400
    assert "http" in response.json()["message"]


# --- concurrency ------------------------------------------------------------------------------------------


def test_parallel_requests_all_succeed_with_the_same_answer(model_server_url: str) -> None:
    """Eight requests at once on two models: the shared models answer each correctly."""
    jobs = [("faces/1", ASTRONAUT)] * 4 + [("pose/1", ASTRONAUT)] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda job: post_b64(model_server_url, job[1], model=job[0]), jobs))
    assert [r.status_code for r in responses] == [200] * 8
    counts = [len(r.json()["predictions"]) for r in responses]
    assert counts[:4] == [1] * 4
    assert len(set(counts[4:])) == 1
    assert counts[4] >= 1
    assert requests.get(f"{model_server_url}/health", timeout=5).json()["status"] == "ok"
