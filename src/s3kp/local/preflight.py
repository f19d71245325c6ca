"""Setup checks run before the stack starts anything: each problem is one line saying how to fix it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from s3kp.local.ports import PortInUseError, command_line, port_holders, port_is_free
from s3kp.local.stack_record import StackRecord, recorded_stacks, records_dir
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


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Raise `PortInUseError` naming, for every busy port, the process that holds it and how to stop it."""
    busy = {what: port for what, port in ports.items() if not port_is_free(host, port)}
    if not busy:
        return
    stacks = recorded_stacks()
    lines, ours = [], False
    for what, port in busy.items():
        holder, of_ours = _holder(port, stacks)
        ours |= of_ours
        lines.append(f"port {port} ({what}) already in use on {host}: held by {holder}")
    if ours:
        lines.append(
            "stop that stack with Ctrl-C in its terminal, or with `s3kp down` (it stops the stacks recorded "
            f"in {records_dir()} by their PIDs)"
        )
    else:
        lines.append("stop what is listening there")
    lines.append("or choose other ports with --aws-port/--inference-port/--api-port")
    raise PortInUseError("\n  ".join(lines))


def _holder(port: int, stacks: list[StackRecord]) -> tuple[str, bool]:
    for record in stacks:
        process = record.holder_of(port)
        if process is not None:
            if process is record.owner:
                return f"{record.describe()}", True
            return f"the {process.name} (pid {process.pid}) of {record.describe()}", True
    pids = port_holders(port)
    if pids:
        return ", ".join(f"pid {pid} ({command_line(pid)})" for pid in pids), False
    return "a process this user cannot inspect (another user's?)", False
