"""The Lambda packages never import the dev tooling (docs/design.md, "Layout").

`s3kp_models` ships in the InferenceFunction's models layer: it may import `s3kp_core` (the shared
layer), numpy and LiteRT, never `s3kp` (the CLI, the local server, the offline stack) nor what only
the local server installs (FastAPI, Starlette, pydantic, OpenCV). `s3kp_core` imports neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
DEV_ONLY = ("s3kp", "fastapi", "starlette", "pydantic", "uvicorn", "cv2", "anyio")


def imported_packages(package_dir: Path) -> dict[str, set[str]]:
    """Top-level names each module of a package imports (absolute imports; relative ones stay inside)."""
    found: dict[str, set[str]] = {}
    for path in package_dir.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("layers/models/s3kp_models", DEV_ONLY),
        ("layers/shared/s3kp_core", (*DEV_ONLY[:1], "s3kp_models", "numpy", "ai_edge_litert", "cv2")),
    ],
)
def test_a_layer_imports_no_dev_tooling(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        module: sorted(names & set(forbidden))
        for module, names in imported_packages(ROOT / package).items()
        if names & set(forbidden)
    }
    assert offenders == {}
