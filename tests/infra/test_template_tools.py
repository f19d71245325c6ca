"""The template passes the tools users and CI run on it: SAM's validator, cfn-lint, checkov, `sam build`."""

from __future__ import annotations

import ast
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from s3kp_models.model_files import MODEL_FILES

from s3kp import samtools
from scripts import audit
from tests.infra.iac_tools import run_tool, tool


def test_sam_validate_with_lint_is_clean() -> None:
    result = run_tool([str(tool("sam")), "validate", "--lint", "--template-file", "template.yaml"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_reports_nothing() -> None:
    result = run_tool([str(tool("cfn-lint")), "template.yaml"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def _checkov_report() -> dict[str, Any]:
    command = "checkov -f template.yaml --framework cloudformation --skip-download --quiet --compact -o json"
    result = run_tool([str(tool("checkov")), *command.split()[1:]])
    report = json.loads(result.stdout)
    # One framework gives one report object; several give a list.
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason(template: dict[str, Any]) -> None:
    report = _checkov_report()

    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0, "checkov evaluated nothing: did it parse the template?"
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented skips"
    for name, skip in skips:
        assert len(skip.get("comment", "")) > 20, f"{name}: skip {skip['id']} needs a written reason"


# The InferenceFunction's code plus its two layers, unzipped (Lambda's limit is 250 MB; issue 20's target).
INFERENCE_PACKAGE_LIMIT_BYTES = 220 * 1000 * 1000
ELF_MACHINE_AARCH64 = 183  # e_machine of an arm64 ELF file


def _tree_bytes(*directories: Path) -> int:
    return sum(
        path.stat().st_size for directory in directories for path in directory.rglob("*") if path.is_file()
    )


def _shared_modules_imported_by_the_functions() -> set[str]:
    """Every `s3kp_core` module the functions' code imports by name (`from s3kp_core.x import ...`,
    `from s3kp_core import x`, `import s3kp_core.x`)."""
    modules: set[str] = set()
    for path in Path("functions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "s3kp_core":
                modules.update(f"s3kp_core.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("s3kp_core."):
                modules.add(str(node.module))
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names if alias.name.startswith("s3kp_core."))
    return modules


def test_the_functions_import_shared_modules_by_name() -> None:
    """What the packaging check below walks: the wiring both inferring functions share among them."""
    modules = _shared_modules_imported_by_the_functions()

    assert {"s3kp_core.inference_wiring", "s3kp_core.processing", "s3kp_core.video_processing"} <= modules


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


@pytest.mark.slow
def test_sam_build_produces_the_functions_and_a_layer_with_the_shared_package(tmp_path: Path) -> None:
    try:
        interpreter = samtools.find_interpreter(samtools.runtime_version())
    except samtools.MissingInterpreter as error:
        pytest.skip(str(error))
    build_dir = tmp_path / "build"
    samtools.stage_models()  # what `make build` does first: the verified model files into the models layer
    result = run_tool(samtools.build_command(build_dir), timeout=600, interpreter=interpreter)
    if result.returncode != 0:  # show why, with the interpreter used
        pytest.fail(f"sam build with {interpreter} failed:\n{result.stdout}\n{result.stderr}")

    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "s3kp_core" / "results_schema.py").is_file()
    # Every shared module a function imports ships in the layer (s3kp_core.inference_wiring, say).
    for module in sorted(_shared_modules_imported_by_the_functions()):
        assert (layer / Path(*module.split("."))).with_suffix(".py").is_file(), f"{module} not in the layer"
    for dependency in ("aws_lambda_powertools", "requests", "PIL"):
        assert (layer / dependency).is_dir(), f"{dependency} missing from the layer"
    # The decoder that ships is the patched one (scripts/minimum_versions.toml).
    shipped = {
        audit.normalized(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions(path=[str(layer)])
    }
    assert "pillow" in shipped
    assert audit.below_minimum(shipped, "the built layer", audit.minimum_versions()) == []
    assert (build_dir / "IngestFunction" / "ingest_handler.py").is_file()
    assert (build_dir / "ApiFunction" / "api_handler.py").is_file()
    assert (build_dir / "template.yaml").is_file()
    # The video function carries PyAV (never the layer) and real copies of the ingest modules it links to.
    video = build_dir / "VideoFunction"
    assert (video / "video_handler.py").is_file()
    for shared in ("ingest_settings.py", "s3_events.py", "sqs_retries.py"):
        assert not (video / shared).is_symlink(), shared
        assert (video / shared).read_text() == (Path("functions/ingest") / shared).read_text(), shared
    assert (video / "av").is_dir()
    assert not (layer / "av").exists()
    packaged = {
        audit.normalized(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions(path=[str(video)])
    }
    assert audit.below_minimum(packaged, "the video function", audit.minimum_versions()) == []
    assert "av" in packaged

    # What `make build` adds: the code ships precompiled for the runtime's interpreter.
    compiled = subprocess.run(samtools.bytecode_command(interpreter, build_dir), check=False, timeout=300)
    assert compiled.returncode == 0
    tag = f"cpython-{samtools.runtime_version().replace('.', '')}"
    assert (layer / "s3kp_core" / "__pycache__" / f"results_schema.{tag}.pyc").is_file()
    assert (build_dir / "IngestFunction" / "__pycache__" / f"ingest_handler.{tag}.pyc").is_file()

    # The builtin backend (issue 20): the InferenceFunction with the models layer, for arm64, no OpenCV,
    # within the size target once precompiled (what deploys).
    models = build_dir / "ModelsLayer" / "python"
    assert (build_dir / "InferenceFunction" / "inference_handler.py").is_file()
    assert (models / "s3kp_models" / "pipelines" / "warp.py").is_file()
    assert sorted(p.name for p in (models / "s3kp_models" / "model_files").glob("*.tflite")) == sorted(
        MODEL_FILES
    )
    shipped_models = {
        audit.normalized(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions(path=[str(models)])
    }
    assert {"numpy": "2.2.6", "ai-edge-litert": "2.3.0"}.items() <= shipped_models.items()
    assert [
        path for path in build_dir.rglob("*") if "cv2" in path.name.lower() or "opencv" in path.name.lower()
    ] == []
    libraries = [*models.rglob("*.so"), *layer.rglob("*.so")]
    assert {
        str(path.relative_to(build_dir)) for path in libraries if _elf_machine(path) != ELF_MACHINE_AARCH64
    } == set()
    assert any(path.parent.name == "ai_edge_litert" for path in libraries)
    size = _tree_bytes(build_dir / "InferenceFunction", build_dir / "SharedLayer", build_dir / "ModelsLayer")
    assert size <= INFERENCE_PACKAGE_LIMIT_BYTES, f"{size / 1e6:.1f} MB"
