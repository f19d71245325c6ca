"""Where the project's files and caches are."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The checkout this package runs from (editable install), or None when installed elsewhere."""
    candidate = Path(__file__).resolve().parents[2]
    return (
        candidate if (candidate / "pyproject.toml").is_file() and (candidate / "functions").is_dir() else None
    )


def cache_dir() -> Path:
    """A git-ignored cache: `.cache/` in the checkout, else the user's cache directory."""
    override = os.environ.get("S3KP_CACHE_DIR")
    if override:
        return Path(override)
    root = project_root()
    if root is not None:
        return root / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s3-keypoints"


def model_dir() -> Path:
    override = os.environ.get("S3KP_MODEL_DIR")
    return Path(override) if override else cache_dir() / "models"
