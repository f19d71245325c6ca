"""inference-sdk 1.8.3, pinned and unmodified (run in .venv-clients): its default v1 mode for a non-Roboflow
URL, and v0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from s3kp import samples
from tests.conftest import MODEL_SERVER_API_KEY
from tests.contract.inference_sdk_remote import InferenceSdk, RemoteClient, SdkHttpError


@pytest.fixture(scope="module")
def astronaut_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "astronaut.jpg"
    path.write_bytes(samples.sample_jpeg("astronaut"))
    return path


@pytest.fixture
def client(inference_sdk: InferenceSdk) -> Callable[..., RemoteClient]:
    def build(
        url: str, api_key: str = MODEL_SERVER_API_KEY, transport: str = "legacy", **configuration: object
    ) -> RemoteClient:
        """The SDK as a user builds it; `legacy` (query/body key, today's default) stated to keep it quiet."""
        return inference_sdk.client(url, api_key).configure(api_key_transport=transport, **configuration)

    return build


def assert_astronaut_face(result: dict) -> None:  # type: ignore[type-arg]
    assert result["image"] == {"width": 512, "height": 512}
    [face] = result["predictions"]
    assert face["class"] == "face"
    assert 150 < face["x"] < 300
    assert len(face["keypoints"]) == 6


def test_v1_mode_lists_the_registry_and_infers(
    client: Callable[..., RemoteClient], model_server_url: str, astronaut_path: Path
) -> None:
    sdk = client(model_server_url)
    assert "faces/1" in [m["model_id"] for m in sdk.list_loaded_models()["models"]]
    assert_astronaut_face(sdk.infer(str(astronaut_path), model_id="faces/1"))


def test_v1_mode_passes_thresholds_and_asks_for_a_visualization(
    client: Callable[..., RemoteClient], model_server_url: str, astronaut_path: Path
) -> None:
    sdk = client(
        model_server_url,
        confidence_threshold=0.3,
        keypoint_confidence_threshold=0.0,
        visualize_predictions=True,
    )
    result = sdk.infer(str(astronaut_path), model_id="faces/1")
    assert_astronaut_face(result)
    assert result["visualization"]


def test_v1_mode_with_the_key_in_an_authorization_header(
    client: Callable[..., RemoteClient], model_server_url: str, astronaut_path: Path
) -> None:
    assert_astronaut_face(
        client(model_server_url, transport="header").infer(str(astronaut_path), model_id="faces/1")
    )


def test_v1_mode_load_model_of_an_unknown_model_fails_with_404(
    client: Callable[..., RemoteClient], model_server_url: str
) -> None:
    with pytest.raises(SdkHttpError) as raised:
        client(model_server_url).load_model("cats/9")
    assert raised.value.status_code == 404


def test_v0_mode_posts_base64_as_json_and_gets_the_face(
    client: Callable[..., RemoteClient], model_server_url: str, astronaut_path: Path
) -> None:
    sdk = client(model_server_url)
    sdk.select_api_v0()
    assert_astronaut_face(sdk.infer(str(astronaut_path), model_id="faces/1"))


@pytest.mark.parametrize("mode", ["v1", "v0"])
def test_wrong_key_is_401_in_both_modes(
    client: Callable[..., RemoteClient], model_server_url: str, astronaut_path: Path, mode: str
) -> None:
    sdk = client(model_server_url, api_key="wrong-key")
    if mode == "v0":
        sdk.select_api_v0()
    with pytest.raises(SdkHttpError) as raised:
        sdk.infer(str(astronaut_path), model_id="faces/1")
    assert raised.value.status_code == 401
    assert raised.value.api_message == "Unauthorized api_key"
