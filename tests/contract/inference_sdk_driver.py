"""Runs inference-sdk, unmodified, in its own environment (.venv-clients) for the contract tests.

inference-sdk pins pillow<13 and brings a second OpenCV, so it cannot live in .venv beside the patched
Pillow and the one OpenCV the model server ships. The tests talk to this process over stdin/stdout, one
JSON object a line: a call in, its result (or the client's error) out. Standard library + inference_sdk only.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from inference_sdk import InferenceConfiguration, InferenceHTTPClient
from inference_sdk.http.errors import HTTPCallErrorError

METHODS = {"infer", "list_loaded_models", "load_model"}


def plain(value: Any) -> Any:
    """The SDK's answers as JSON: its dataclasses become objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def call(request: dict[str, Any]) -> dict[str, Any]:
    if request["method"] not in METHODS:
        raise ValueError(f"unknown method {request['method']!r}")
    sdk = InferenceHTTPClient(api_url=request["api_url"], api_key=request["api_key"])
    sdk.configure(InferenceConfiguration(**request["configuration"]))
    if request["v0"]:
        sdk.select_api_v0()
    try:
        return {"result": plain(getattr(sdk, request["method"])(*request["args"]))}
    except HTTPCallErrorError as error:
        return {
            "error": {
                "type": type(error).__name__,
                "status_code": error.status_code,
                "api_message": error.api_message,
                "description": error.description,
            }
        }


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(call(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
