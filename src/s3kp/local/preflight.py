"""Setup checks run before the stack starts anything: each problem is one line saying how to fix it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from s3kp.paths import project_root

SETUP_HINT = "run `make setup` in the checkout"
# module -> what needs it
_LOCAL_MODULES = {
    "moto": "the local AWS endpoint",
    "werkzeug": "the local AWS endpoint",
    "yaml": "template.yaml",
}
_INFERENCE_MODULES = {"uvicorn": "the inference server", "fastapi": "the inference server",
                      "ai_edge_litert": "the inference server"}  # fmt: skip
HANDLER_FILES = ("functions/ingest/ingest_handler.py", "functions/api/api_handler.py")


class SetupError(RuntimeError):
    pass


def checkout() -> Path:
    """The project checkout the stack runs from (its template and handler code)."""
    root = project_root()
    if root is None:
        raise SetupError("the offline stack runs from a checkout of s3-keypoints (template.yaml, functions/)")
    return root


def check_setup(*, local_inference: bool) -> Path:
    """Raise `SetupError` for the first missing piece; return the checkout."""
    root = checkout()
    if sys.prefix == sys.base_prefix and not (root / ".venv").is_dir():
        raise SetupError(f"no virtual environment (.venv missing): {SETUP_HINT}")
    needed = _LOCAL_MODULES | (_INFERENCE_MODULES if local_inference else {})
    for module, purpose in needed.items():
        if importlib.util.find_spec(module) is None:
            raise SetupError(f"Python package `{module}` (for {purpose}) is not installed: {SETUP_HINT}")
    for relative in ("template.yaml", *HANDLER_FILES):
        if not (root / relative).is_file():
            raise SetupError(f"{relative} is missing from {root}")
    if local_inference:
        from s3kp.model_server import model_files

        bad = model_files.missing_or_corrupt()
        if bad:
            raise SetupError(f"model files missing or corrupt ({', '.join(bad)}): run `s3kp models fetch`")
    return root
