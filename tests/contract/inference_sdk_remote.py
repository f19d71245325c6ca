"""inference-sdk as the contract tests use it, run in .venv-clients through `inference_sdk_driver.py`.

`InferenceSdk` starts the driver once; `client()` gives an object with the SDK's own method names
(`configure`, `select_api_v0`, `infer`, `list_loaded_models`, `load_model`) whose calls run in the SDK's
environment and come back as JSON; the SDK's `HTTPCallErrorError` comes back as `SdkHttpError` with the
same `status_code` and `api_message`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
DRIVER = Path(__file__).with_name("inference_sdk_driver.py")


class SdkHttpError(Exception):
    def __init__(self, status_code: int, api_message: str | None, description: str | None) -> None:
        super().__init__(f"{status_code}: {api_message or description}")
        self.status_code = status_code
        self.api_message = api_message


class InferenceSdk:
    """The driver process; one per test session."""

    def __init__(self) -> None:
        if not CLIENTS_PYTHON.exists():
            raise RuntimeError(f"{CLIENTS_PYTHON} is missing: `make setup` installs inference-sdk there")
        self._process = subprocess.Popen(
            [str(CLIENTS_PYTHON), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if json.loads(self._readline()) != {"ready": True}:
            raise RuntimeError("the inference-sdk driver did not start")

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the inference-sdk driver exited ({self._process.wait()})")
        return line

    def call(self, request: dict[str, Any]) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._readline())
        if "error" in answer:
            error = answer["error"]
            raise SdkHttpError(error["status_code"], error["api_message"], error["description"])
        return answer["result"]

    def client(self, api_url: str, api_key: str) -> RemoteClient:
        return RemoteClient(self, api_url, api_key)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


@dataclass
class RemoteClient:
    """`InferenceHTTPClient(api_url=..., api_key=...)`, its calls made in the SDK's environment."""

    sdk: InferenceSdk
    api_url: str
    api_key: str
    configuration: dict[str, Any] = field(default_factory=dict)
    v0: bool = False

    def configure(self, **configuration: Any) -> RemoteClient:
        """`configure(InferenceConfiguration(**configuration))`."""
        self.configuration = configuration
        return self

    def select_api_v0(self) -> None:
        self.v0 = True

    def _call(self, method: str, *args: Any) -> Any:
        return self.sdk.call(
            {
                "api_url": self.api_url,
                "api_key": self.api_key,
                "configuration": self.configuration,
                "v0": self.v0,
                "method": method,
                "args": list(args),
            }
        )

    def infer(self, image_path: str, model_id: str) -> Any:
        return self._call("infer", image_path, model_id)

    def list_loaded_models(self) -> Any:
        return self._call("list_loaded_models")

    def load_model(self, model_id: str) -> Any:
        return self._call("load_model", model_id)
