"""Records every AWS API call a Lambda handler makes, for the IAM proof (test harness only, never shipped).

A botocore event hook (`provide-client-params`, which API calls and presigned URLs both emit, with the
caller's own parameters) appends one JSON line per call to a log file shared by the test process and
the offline stack's worker processes. A call belongs to a function when the function's code is on the
stack of the call or, in a thread the handler started (the API's shard queries), when that function's
code created the client:
the code directories come from the template (`CodeUri`), so in-process handlers and worker sandboxes are
tagged alike, and calls of the tests themselves are not recorded. A poller (the offline stack's queue
runner, which does what Lambda's event source mapping does with the function's role) is tagged with the
function it polls for when its module is on the stack (the runner's threads carry the function's logical id
in their name, which tells apart the functions one runner module polls for).

A request to an AWS_IAM Function URL (the ingest function calling the InferenceFunction) is no botocore
API call: it is recorded where it is signed, `s3kp_core.request_signing.RequestSigner.signature_headers`,
as `lambda InvokeFunctionUrl` with the URL's origin (the way presigned URLs are recorded where botocore
builds them).

Standalone on purpose (standard library and botocore only): `site/sitecustomize.py` loads this file by
path in every Python process the test session starts, before the Lambda worker replaces its environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOG_VARIABLE = "S3KP_AWS_CALL_LOG"  # where to append the records (unset: recording off)
FUNCTIONS_VARIABLE = "S3KP_AWS_CALL_FUNCTIONS"  # "IngestFunction=/abs/functions/ingest;ApiFunction=..."
ENVIRONMENT_VARIABLE = "S3KP_AWS_CALL_ENVIRONMENT"  # variables naming resources, recorded with each call
POLLERS_VARIABLE = "S3KP_AWS_CALL_POLLERS"  # "IngestFunction=/abs/src/s3kp/local/runner.py"

# The parameters that name what a call touches; everything else (bodies, items) is left out.
RESOURCE_PARAMETERS = (
    "Bucket",
    "Key",
    "VersionId",
    "Prefix",
    "TableName",
    "IndexName",
    "SecretId",
    "Name",
    "QueueUrl",
    "QueueName",
    "EventBusName",
)

_lock = threading.Lock()
_state: dict[str, Any] = {"log": None, "functions": (), "pollers": (), "variables": (), "enabled": True}


def configure(
    log_path: str | os.PathLike[str],
    functions: Mapping[str, str | os.PathLike[str]],
    variables: tuple[str, ...],
    pollers: Mapping[str, str | os.PathLike[str]] | None = None,
) -> None:
    """Start recording into `log_path`; `functions` maps a logical id to its code directory, `pollers` a
    logical id to the module file that polls its queue on its behalf."""
    _state["log"] = str(log_path)
    _state["functions"] = tuple((name, str(Path(path).resolve())) for name, path in functions.items())
    _state["pollers"] = tuple((name, str(Path(path).resolve())) for name, path in (pollers or {}).items())
    _state["variables"] = variables
    # Most processes of the session never import botocore (model servers, CLI runs): patch on import
    # instead of paying ~0.2 s of CPU for botocore in each of them.
    for module_name, patch in _PATCHES.items():
        if module_name in sys.modules:
            patch(sys.modules[module_name])
        elif not any(isinstance(f, _PatchOnImport) and f.module_name == module_name for f in sys.meta_path):
            sys.meta_path.insert(0, _PatchOnImport(module_name, patch))


def configure_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """`configure` from the variables the test session exports to its child processes."""
    log_path = environ.get(LOG_VARIABLE)
    if not log_path:
        return False
    functions = _pairs(environ.get(FUNCTIONS_VARIABLE, ""))
    pollers = _pairs(environ.get(POLLERS_VARIABLE, ""))
    variables = tuple(name for name in environ.get(ENVIRONMENT_VARIABLE, "").split(",") if name)
    configure(log_path, functions, variables, pollers)
    return True


def _pairs(value: str) -> dict[str, str]:
    """`Name=path;Name=path` as a dict."""
    return dict(entry.split("=", 1) for entry in value.split(";") if "=" in entry)


def set_enabled(enabled: bool) -> None:
    """Pause or resume recording in this process (the test process records during integration tests)."""
    _state["enabled"] = enabled


def function_on_stack(frame: Any = None) -> str | None:
    """The logical id of the function whose code (or poller) is running in this thread, if any: the
    outermost on the stack, the handler that was invoked (a module one function's directory shares with
    another's, such as the video function's symlinks to the ingest function's modules, runs inside it)."""
    functions, pollers = _state["functions"], _state["pollers"]
    frame = frame or sys._getframe(1)
    found: str | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        for name, directory in functions:
            if filename.startswith(directory + os.sep):
                found = str(name)
        polling = [str(name) for name, module in pollers if filename == module]
        if polling:
            thread = threading.current_thread().name
            found = polling[0] if len(polling) == 1 else next((n for n in polling if n in thread), found)
        frame = frame.f_back
    return found


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first imported."""

    def __init__(self, module_name: str, patch: Any) -> None:
        self.module_name = module_name
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.module_name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            self.patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _patch_botocore(session_module: Any = None) -> None:
    if session_module is None:
        import botocore.session as session_module

    session_class = session_module.Session
    if getattr(session_class.create_client, "_s3kp_records", False):
        return
    original = session_class.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        owner = function_on_stack()

        def record(params: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any) -> None:
            _record(owner, params, model, context)

        # `unique_id` keeps a re-created client's copy of the emitter from recording twice.
        client.meta.events.register("provide-client-params", record, unique_id=f"s3kp-record-{id(client)}")
        return client

    create_client._s3kp_records = True  # type: ignore[attr-defined]
    session_class.create_client = create_client


def _patch_request_signing(module: Any) -> None:
    signer_class = module.RequestSigner
    if getattr(signer_class.signature_headers, "_s3kp_records", False):
        return
    original = signer_class.signature_headers

    def signature_headers(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        headers = original(self, method, url, *args, **kwargs)
        if self.service == "lambda":
            parts = urlsplit(url)
            _write(
                function_on_stack(),
                "lambda",
                "InvokeFunctionUrl",
                {"FunctionUrl": f"{parts.scheme}://{parts.netloc}/"},
            )
        return headers

    signature_headers._s3kp_records = True  # type: ignore[attr-defined]
    signer_class.signature_headers = signature_headers


def _record(owner: str | None, params: Mapping[str, Any], model: Any, context: Mapping[str, Any]) -> None:
    try:
        if not _state["enabled"] or _state["log"] is None:
            return
        # The code on the stack first: in one test process, a client cached by one handler (Powertools'
        # parameter providers) may serve the other. The client's creator covers a handler's worker threads.
        function = function_on_stack() or owner
        if function is None:
            return
        entry = {
            "function": function,
            "service": model.service_model.service_name,
            "operation": model.name,
            "params": {k: params[k] for k in RESOURCE_PARAMETERS if isinstance(params.get(k), str)},
            # Batch and transaction calls name their tables (and event buses) inside lists.
            "tables": sorted(params["RequestItems"]) if isinstance(params.get("RequestItems"), dict) else [],
            "transact": [
                [operation, item[operation].get("TableName")]
                for item in params.get("TransactItems", [])
                for operation in item
            ],
            "buses": [
                entry.get("EventBusName", "default")
                for entry in params.get("Entries", [])
                if isinstance(entry, dict)
            ],
            "presigned": bool(context.get("is_presign_request")),
            "environment": {name: os.environ[name] for name in _state["variables"] if name in os.environ},
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            "pid": os.getpid(),
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _lock, open(_state["log"], "a", encoding="utf-8") as log:
            log.write(line)  # one short append per call: lines from several processes do not interleave
    except Exception as error:  # recording must never change what the handler does
        print(f"s3kp AWS call recorder: {error!r}", file=sys.stderr)


def _write(function: str | None, service: str, operation: str, params: Mapping[str, str]) -> None:
    """A record of a call that is not a botocore API call (see the module's docstring)."""
    try:
        if not _state["enabled"] or _state["log"] is None or function is None:
            return
        entry = {
            "function": function,
            "service": service,
            "operation": operation,
            "params": dict(params),
            "tables": [],
            "transact": [],
            "buses": [],
            "presigned": False,
            "environment": {name: os.environ[name] for name in _state["variables"] if name in os.environ},
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            "pid": os.getpid(),
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _lock, open(_state["log"], "a", encoding="utf-8") as log:
            log.write(line)
    except Exception as error:  # recording must never change what the handler does
        print(f"s3kp AWS call recorder: {error!r}", file=sys.stderr)


_PATCHES = {"botocore.session": _patch_botocore, "s3kp_core.request_signing": _patch_request_signing}


def read_log(log_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(log_path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
