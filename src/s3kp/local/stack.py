"""The offline stack — AWS (moto server), the inference server, the queue runners, the HTTP API.

    LocalStack(options)  start()/stop() or `with`: used by `s3kp up` and `s3kp demo` (their commands are in
                         `stack_commands` and `demo`), the soak run, the tests and the benchmarks.

Start order: checks (setup, ports) before anything runs; then the two child processes (moto server, the
inference server, whose models load while the rest starts); the resources of template.yaml in moto; one
Lambda worker per ingest poller and per video poller, plus the API workers; the runners (the ingest queue's
and the video queue's) and the HTTP API. Stop order is the reverse, so no handler sees its AWS endpoint
vanish before it is stopped itself.

The inference endpoint is the template's InferenceBackend: `roboflow` (the default) is the local
inference server as a Roboflow stand-in (or `--inference-url`, a real one, with `--api-key`); `builtin`
runs the InferenceFunction's handler in Lambda workers (one per ingest and per video poller) behind a
local AWS_IAM Function URL (`function_url`), which the ingest and video workers call with SigV4-signed
requests, as in AWS.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from botocore.credentials import ReadOnlyCredentials

from s3kp.local import preflight
from s3kp.local.circuit_watch import CircuitWatch
from s3kp.local.function_url import FunctionUrlBridge
from s3kp.local.host_guard import HostGuard
from s3kp.local.http_api import HttpApiBridge
from s3kp.local.ports import PortInUseError, is_loopback, url_host
from s3kp.local.processes import ChildProcess
from s3kp.local.runner import BatchOutcome, QueueRunner, RunnerSettings
from s3kp.local.sigv4_check import ExpectedSigner
from s3kp.local.stack_record import RecordedProcess, StackRecord, discard_dead_records
from s3kp.local.template_functions import (
    function_with_handler,
    http_api_cors,
    http_api_routes,
    template_functions,
)
from s3kp.local.workers import FunctionConfig, LambdaWorker, WorkerCrashed, WorkerPool, lambda_environment
from s3kp.paths import cache_dir, model_dir

if TYPE_CHECKING:
    from s3kp.local.resources import LocalResources

# The name in the stack's record (`s3kp down` shows it) when no command names it (tests, benchmarks).
DEFAULT_PROGRAM = "s3kp up"
REGION = "us-east-1"
# BlazeFace full range: it also finds the small faces of the composite samples (faces/1 misses them).
DEFAULT_MODEL_ID = "faces/2"
LOCAL_API_KEY = "local-dev-key"
# moto accepts any credentials; fixed dummy ones keep a user's real credentials out of local requests.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
API_WORKERS = 2
BACKENDS = ("roboflow", "builtin")  # the template's InferenceBackend values
MOTO_START_TIMEOUT = 30.0
INFERENCE_START_TIMEOUT = 180.0

Print = Callable[[str], None]


class StackError(RuntimeError):
    """A problem the user can fix (port in use, setup missing): reported as one line, no traceback."""


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    aws_port: int = 4566
    inference_port: int = 9001
    api_port: int = 3000
    inference_url: str | None = None  # an external endpoint instead of the local inference server
    inference_backend: str = "roboflow"  # or "builtin": the InferenceFunction behind a Function URL
    api_key: str | None = None
    model_id: str | None = None
    bucket: str | None = None
    name_prefix: str = "s3kp-local"
    concurrency: int | None = None  # ingest pollers; default: the template's MaximumConcurrency
    ingest_timeout_seconds: float | None = None  # default: the template's (fault drills shorten it)
    ingest_overrides: tuple[tuple[str, str], ...] = ()  # extra ingest environment (e.g. retry delays)
    video_concurrency: int | None = None  # video pollers; default: the template's MaximumConcurrency
    video_overrides: tuple[tuple[str, str], ...] = ()  # extra video environment (e.g. VIDEO_SEGMENT_SECONDS)
    allow_remote: bool = False
    verbose: bool = False
    log_dir: Path = field(default_factory=lambda: cache_dir() / "logs")


@dataclass(frozen=True)
class FunctionsPlan:
    """The three functions as they will run, and how the queues feed the ingest and video functions."""

    ingest: FunctionConfig
    api: FunctionConfig
    video: FunctionConfig
    inference: FunctionConfig | None  # the builtin backend's InferenceFunction
    ingest_concurrency: int  # pollers, each with its own worker (MaximumConcurrency)
    batch_size: int
    batching_window_seconds: float
    video_concurrency: int
    video_batch_size: int
    video_batching_window_seconds: float


class LocalStack:
    """The whole offline stack in one object; `stop()` is safe to call at any point of `start()`."""

    def __init__(
        self,
        options: StackOptions,
        echo: Print | None = None,
        interrupted: threading.Event | None = None,
        report_batches: bool = True,
        program: str = DEFAULT_PROGRAM,
    ) -> None:
        """`echo` prints progress lines (and one per batch with `report_batches`); setting `interrupted`
        abandons a start-up still waiting (the `s3kp` commands rely on `s3kp.console` instead, which
        interrupts the main thread). `program` names the stack in its record (`s3kp down`)."""
        self.options = options
        self._program = program
        self._record: StackRecord | None = None
        self._report_batches = report_batches
        self._echo = echo or _print_flush
        self._interrupted = interrupted or threading.Event()
        host = url_host(options.host)
        self.aws_endpoint = f"http://{host}:{options.aws_port}"
        self.api_url = f"http://{host}:{options.api_port}"
        self.builtin = options.inference_backend == "builtin"
        # A Function URL ends with a slash (AWS's FunctionUrl attribute does); the ingest function strips it.
        local_url = f"http://{host}:{options.inference_port}" + ("/" if self.builtin else "")
        self.inference_url = options.inference_url or local_url
        self.model_id = options.model_id or DEFAULT_MODEL_ID
        self.resources: LocalResources  # set by start()
        self._moto: ChildProcess | None = None
        self._inference: ChildProcess | None = None
        self._ingest_workers: list[LambdaWorker] = []
        self._video_workers: list[LambdaWorker] = []
        self._api_workers: list[LambdaWorker] = []
        self._inference_workers: list[LambdaWorker] = []
        self._function_url: FunctionUrlBridge | None = None
        self._workers: list[LambdaWorker] = []
        self._runner: QueueRunner | None = None
        self._video_runner: QueueRunner | None = None
        self._http_api: HttpApiBridge | None = None
        self._circuit_watch: CircuitWatch | None = None
        self._saved_environment: dict[str, str | None] = {}
        self.batches: list[BatchOutcome] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        options = self.options
        local_inference = options.inference_url is None and not self.builtin
        self._check(local_inference)
        options.log_dir.mkdir(parents=True, exist_ok=True)
        self._start_record(local_inference)
        # This process's boto3 (resources, demo) uses the stack's moto too, until `stop()` puts back what was.
        self._saved_environment = {name: os.environ.get(name) for name in self.aws_environment()}
        os.environ.update(self.aws_environment())

        # Children first: no thread exists yet (see processes.py), and the models load meanwhile.
        self._moto = ChildProcess(
            "moto server",
            [sys.executable, "-m", "s3kp.local.aws_server", "-H", options.host, "-p", str(options.aws_port),
             *(["--allow-remote"] if options.allow_remote else [])],  # moto behind our guards
            options.log_dir / "moto.log",
        )  # fmt: skip
        self._moto.start()
        self._remember(self._moto, options.aws_port)
        if local_inference:
            self._inference = ChildProcess(
                "inference server",
                [sys.executable, "-m", "s3kp.cli", "model-server", "--host", options.host,
                 "--port", str(options.inference_port),
                 *(["--allow-remote"] if options.allow_remote else [])],  # _check demanded it already
                options.log_dir / "inference-server.log",
                # The key travels in the environment, not argv, so `ps` does not show it.
                env=os.environ | {"S3KP_MODEL_SERVER_API_KEY": self._api_key()},
            )  # fmt: skip
            self._inference.start()
            self._remember(self._inference, options.inference_port)

        started = time.monotonic()
        self._moto.wait_healthy(f"{self.aws_endpoint}/moto-api/", MOTO_START_TIMEOUT)
        self._step(f"AWS endpoint (moto server)  {self.aws_endpoint}", started)

        started = time.monotonic()
        self._create_resources()
        self._step(f"resources from template.yaml  bucket {self.resources.bucket}", started)

        started = time.monotonic()
        self._start_workers()
        workers = (
            f"ingest x{len(self._ingest_workers)}, video x{len(self._video_workers)}, api x{API_WORKERS}"
        )
        if self.builtin:
            workers += f", inference x{len(self._inference_workers)}"
        self._step(f"Lambda workers  {workers}", started)

        if self.builtin:
            started = time.monotonic()
            self._start_function_url()
            self._step(
                f"InferenceFunction ({self.model_id}) behind a Function URL (AWS_IAM)  {self.inference_url}",
                started,
            )
        elif self._inference is not None:
            started = time.monotonic()
            self._inference.wait_healthy(
                f"{self.inference_url}/health", INFERENCE_START_TIMEOUT, self._loading()
            )
            self._step(f"inference server  {self.inference_url}", started)
        else:
            self._echo(f"  inference endpoint  {_without_query(self.inference_url)} (external)")

        started = time.monotonic()
        self._start_runner()
        self._start_http_api()
        self._step(f"queue runner and HTTP API  {self.api_url}", started)
        self._start_circuit_watch()

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; idempotent."""
        if self._circuit_watch is not None:
            self._circuit_watch.stop()
            self._circuit_watch = None
        for runner in (self._runner, self._video_runner):
            if runner is not None:
                runner.request_stop()
        if self._http_api is not None:
            self._http_api.stop()
            self._http_api = None
        if self._function_url is not None:
            self._function_url.stop()
            self._function_url = None
        for worker in self._workers:  # an in-flight batch ends now; its messages are simply not deleted
            worker.close()
        self._workers = []
        if self._moto is not None:  # also ends the runner's pending long polls at once
            self._moto.stop()
            self._moto = None
        for runner in (self._runner, self._video_runner):
            if runner is not None:
                runner.join(timeout=10)
        self._runner = self._video_runner = None
        if self._inference is not None:
            self._inference.stop()
            self._inference = None
        if self._record is not None:
            self._record.delete()
            self._record = None
        for name, value in self._saved_environment.items():  # later clients must not reach a stopped moto
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}

    @property
    def ingest_workers(self) -> tuple[LambdaWorker, ...]:
        """The ingest sandboxes, one per poller (fault drills kill one mid-batch)."""
        return tuple(self._ingest_workers)

    @property
    def video_workers(self) -> tuple[LambdaWorker, ...]:
        """The video sandboxes, one per poller of the video queue."""
        return tuple(self._video_workers)

    # ------------------------------------------------------------------ pieces
    def aws_environment(self) -> dict[str, str]:
        """What a shell (or boto3) needs to talk to the local AWS endpoint."""
        region = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
        return {"AWS_ENDPOINT_URL": self.aws_endpoint, **DUMMY_CREDENTIALS, **region}

    def _check(self, local_inference: bool) -> None:
        options = self.options
        if not is_loopback(options.host) and not options.allow_remote:
            raise StackError(
                f"--host {options.host} would expose an unauthenticated API and AWS endpoint to the network: "
                "add --allow-remote if that is really what you want"
            )
        if options.inference_backend not in BACKENDS:
            raise StackError(f"--inference-backend must be one of {', '.join(BACKENDS)}")
        if self.builtin and options.inference_url:
            raise StackError("--inference-url is for the roboflow backend: builtin serves its own models")
        if options.inference_url and not options.api_key:
            raise StackError("--inference-url needs an API key: pass --api-key or set $ROBOFLOW_API_KEY")
        if self.builtin:
            from s3kp_models.model_files import MODEL_IDS

            if self.model_id not in MODEL_IDS:
                raise StackError(
                    f"--inference-backend builtin serves {', '.join(MODEL_IDS)}, not {self.model_id}"
                )
        try:
            self._root = preflight.check_setup(local_inference=local_inference or self.builtin)
        except preflight.SetupError as error:
            raise StackError(str(error)) from None
        ports = {"AWS endpoint": options.aws_port, "HTTP API": options.api_port}
        if local_inference:
            ports["inference server"] = options.inference_port
        if self.builtin:
            ports["InferenceFunction's URL"] = options.inference_port
        if len(set(ports.values())) != len(ports):
            raise StackError(f"the stack needs distinct ports, got {ports}")
        try:
            preflight.check_ports(options.host, ports)
        except PortInUseError as error:
            raise StackError(str(error)) from None
        if not is_loopback(options.host):
            self._echo(f"WARNING: listening on {options.host}: anyone on the network can use these endpoints")

    def _start_record(self, local_inference: bool) -> None:
        """Record this stack's processes and ports while it runs (see stack_record.py)."""
        options = self.options
        with_inference = local_inference or self.builtin
        ports = (options.aws_port, options.api_port, *((options.inference_port,) if with_inference else ()))
        for dead in discard_dead_records():
            self._echo(f"  ..  discarded the record of a stack that did not stop cleanly: {dead.describe()}")
        owner = RecordedProcess.of(self._program, os.getpid(), ports)
        self._record = StackRecord(owner, host=options.host)
        self._record.save()

    def _remember(self, child: ChildProcess | LambdaWorker, port: int | None = None) -> None:
        if self._record is None or child.pid is None:
            return
        name = child.name if isinstance(child, ChildProcess) else f"Lambda worker {child.function.name}"
        self._record.children.append(RecordedProcess.of(name, child.pid, (port,) if port else ()))
        self._record.save()

    def _api_key(self) -> str:
        return self.options.api_key or LOCAL_API_KEY

    def _create_resources(self) -> None:
        from s3kp.local.resources import create_resources

        self.resources = create_resources(
            self.aws_endpoint,
            region=REGION,
            name_prefix=self.options.name_prefix,
            api_key=self._api_key(),
            bucket=self.options.bucket,
        )

    def _plan_functions(self) -> FunctionsPlan:
        from s3kp.local.resources import (
            api_environment,
            inference_environment,
            ingest_environment,
            video_environment,
        )

        declared = template_functions(self._root / "template.yaml")
        ingest = function_with_handler(declared, "ingest_handler")
        api = function_with_handler(declared, "api_handler")
        video = function_with_handler(declared, "video_handler")
        prefix = self.options.name_prefix
        inference = None
        if self.builtin:
            declared_inference = function_with_handler(declared, "inference_handler")
            inference = FunctionConfig(
                name=f"{prefix}-inference",
                code_dir=self._root / declared_inference.code_uri,
                handler=declared_inference.handler,
                # The models layer's files are staged only by `make build`: locally, the verified cache.
                environment=inference_environment(
                    self.resources, model_id=self.model_id, MODEL_DIR=str(model_dir())
                ),
                timeout_seconds=declared_inference.timeout_seconds,
                memory_mb=declared_inference.memory_mb,
            )
        return FunctionsPlan(
            ingest=FunctionConfig(
                name=f"{prefix}-ingest",
                code_dir=self._root / ingest.code_uri,
                handler=ingest.handler,
                environment=ingest_environment(
                    self.resources,
                    inference_url=self.inference_url,
                    model_id=self.model_id,
                    inference_backend=self.options.inference_backend,
                    **dict(self.options.ingest_overrides),
                ),
                timeout_seconds=self.options.ingest_timeout_seconds or ingest.timeout_seconds,
                memory_mb=ingest.memory_mb,
            ),
            api=FunctionConfig(
                name=f"{prefix}-api",
                code_dir=self._root / api.code_uri,
                handler=api.handler,
                environment=api_environment(self.resources),
                timeout_seconds=api.timeout_seconds,
                memory_mb=api.memory_mb,
            ),
            video=FunctionConfig(
                name=f"{prefix}-video",
                code_dir=self._root / video.code_uri,
                handler=video.handler,
                environment=video_environment(
                    self.resources,
                    inference_url=self.inference_url,
                    model_id=self.model_id,
                    inference_backend=self.options.inference_backend,
                    **dict(self.options.video_overrides),
                ),
                timeout_seconds=video.timeout_seconds,
                memory_mb=video.memory_mb,
            ),
            inference=inference,
            ingest_concurrency=self.options.concurrency or ingest.sqs_maximum_concurrency or 1,
            batch_size=ingest.sqs_batch_size or 10,
            batching_window_seconds=ingest.sqs_batching_window_seconds,
            video_concurrency=self.options.video_concurrency or video.sqs_maximum_concurrency or 1,
            video_batch_size=video.sqs_batch_size or 1,
            video_batching_window_seconds=video.sqs_batching_window_seconds,
        )

    def _start_workers(self) -> None:
        plan = self._plan = self._plan_functions()
        base = self.aws_environment()
        ingest_env = lambda_environment(plan.ingest, REGION, base)
        video_env = lambda_environment(plan.video, REGION, base)
        api_env = lambda_environment(plan.api, REGION, base)
        self._ingest_workers = [
            LambdaWorker(plan.ingest, ingest_env, self._log_path("ingest"))
            for _ in range(plan.ingest_concurrency)
        ]
        self._video_workers = [
            LambdaWorker(plan.video, video_env, self._log_path("video"))
            for _ in range(plan.video_concurrency)
        ]
        self._api_workers = [
            LambdaWorker(plan.api, api_env, self._log_path("api")) for _ in range(API_WORKERS)
        ]
        if plan.inference is not None:
            inference_env = lambda_environment(plan.inference, REGION, base)
            self._inference_workers = [
                LambdaWorker(plan.inference, inference_env, self._log_path("inference"))
                for _ in range(plan.ingest_concurrency + plan.video_concurrency)
            ]
        self._workers = (
            self._ingest_workers + self._video_workers + self._api_workers + self._inference_workers
        )
        # Cold starts in parallel: each is a fresh interpreter importing its handler. Not `with`: a stop
        # request must not wait here for every cold start (stop() closes the workers still starting).
        pool = ThreadPoolExecutor(len(self._workers))
        try:
            failures = [error for error in pool.map(_start_quietly, self._workers) if error is not None]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers:
            self._remember(worker)
        if failures:
            logs = self.options.log_dir if not self.options.verbose else "the output above"
            raise StackError(f"{failures[0]} (traceback in {logs})")

    def _start_runner(self) -> None:
        """The two event source mappings: the ingest queue feeds the ingest workers, the video queue (video
        notifications and segment tasks) the video workers, each poller with its own sandbox."""
        import boto3

        plan = self._plan
        sqs = boto3.client("sqs", endpoint_url=self.aws_endpoint, region_name=REGION)
        ingest = RunnerSettings(
            queue_url=self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            region=REGION,
            function_name=plan.ingest.name,
            timeout_seconds=plan.ingest.timeout_seconds,
            memory_mb=plan.ingest.memory_mb,
            batch_size=plan.batch_size,
            concurrency=plan.ingest_concurrency,
            batching_window_seconds=plan.batching_window_seconds,
            logical_id="IngestFunction",
        )
        handlers = [worker.invoke for worker in self._ingest_workers]
        self._runner = QueueRunner(sqs, ingest, handlers, on_batch=self._report_batch)
        self._runner.start()
        video = RunnerSettings(
            queue_url=self.resources.video_queue_url,
            queue_arn=self.resources.video_queue_arn,
            region=REGION,
            function_name=plan.video.name,
            timeout_seconds=plan.video.timeout_seconds,
            memory_mb=plan.video.memory_mb,
            batch_size=plan.video_batch_size,
            concurrency=plan.video_concurrency,
            batching_window_seconds=plan.video_batching_window_seconds,
            logical_id="VideoFunction",
        )
        handlers = [worker.invoke for worker in self._video_workers]
        self._video_runner = QueueRunner(sqs, video, handlers, on_batch=self._report_video_batch)
        self._video_runner.start()

    def _start_circuit_watch(self) -> None:
        """Print the endpoint's circuit changes (opened by an outage, closed on recovery) as they happen."""
        import boto3

        dynamodb = boto3.resource("dynamodb", endpoint_url=self.aws_endpoint, region_name=REGION)
        self._circuit_watch = CircuitWatch(
            dynamodb.Table(self.resources.idempotency_table),
            # Named as the ingest function names it: its INFERENCE_URL (no trailing /) and MODEL_ID.
            f"{self.inference_url.rstrip('/')}/{self.model_id}",
            self._echo,
        )
        self._circuit_watch.start()

    def _start_http_api(self) -> None:
        self._http_api = HttpApiBridge(
            self.options.host,
            self.options.api_port,
            WorkerPool(self._api_workers).invoke,
            routes=http_api_routes(self._root / "template.yaml"),
            cors=http_api_cors(self._root / "template.yaml"),
            guard=HostGuard.for_bind(self.options.host, allow_remote=self.options.allow_remote),
            function_name=self._plan.api.name,
            timeout_seconds=self._plan.api.timeout_seconds,
        )
        self._http_api.start()

    def _start_function_url(self) -> None:
        """The InferenceFunction's workers behind a local AWS_IAM Function URL that takes the requests
        the ingest workers sign with the stack's (dummy) credentials for this region."""
        plan = self._plan
        assert plan.inference is not None
        credentials = ReadOnlyCredentials(
            DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        self._function_url = FunctionUrlBridge(
            self.options.host,
            self.options.inference_port,
            WorkerPool(self._inference_workers).invoke,
            signer=ExpectedSigner(credentials, REGION),
            function_name=plan.inference.name,
            timeout_seconds=plan.inference.timeout_seconds,
            guard=HostGuard.for_bind(self.options.host, allow_remote=self.options.allow_remote),
        )
        self._function_url.start()

    # ------------------------------------------------------------------ output
    def _log_path(self, function: str) -> Path | None:
        """Handler logs go to a file per function, or to the terminal with --verbose."""
        if self.options.verbose:
            return None
        return self.options.log_dir / f"{function.rsplit('-', 1)[-1]}.log"

    def _step(self, what: str, started: float) -> None:
        self._echo(f"  ok  {what}  ({time.monotonic() - started:.1f} s)")

    def _loading(self) -> Callable[[float], None]:
        next_report = [5.0]

        def report(elapsed: float) -> None:
            if self._interrupted.is_set():
                raise StackError("interrupted while the inference server was starting")
            if elapsed >= next_report[0]:
                self._echo(f"  ..  inference server loading its models ({elapsed:.0f} s)")
                next_report[0] += 5.0

        return report

    def _report_batch(self, outcome: BatchOutcome, kind: str = "") -> None:
        self.batches.append(outcome)
        if not self._report_batches:
            return
        if outcome.error:
            self._echo(f"  {kind}batch of {len(outcome.received)}: FAILED ({outcome.error}); retried "
                       "after the visibility timeout")  # fmt: skip
        else:
            retried = f", {len(outcome.retried)} to retry" if outcome.retried else ""
            self._echo(f"  {kind}batch of {len(outcome.received)}: {len(outcome.deleted)} done{retried} "
                       f"({outcome.duration_ms:.0f} ms)")  # fmt: skip

    def _report_video_batch(self, outcome: BatchOutcome) -> None:
        self._report_batch(outcome, "video ")

    def summary(self) -> str:
        """Endpoints, bucket, environment and ready-to-paste commands."""
        bucket = self.resources.bucket
        prefix = self.resources.input_prefix
        env = self.aws_environment()
        backend = "; the InferenceFunction behind an AWS_IAM Function URL" if self.builtin else ""
        lines = [
            "",
            f"Ready. Upload images and videos under s3://{bucket}/{prefix} and they are processed.",
            "",
            f"  AWS endpoint     {self.aws_endpoint}   (S3, SQS, DynamoDB, Secrets Manager: moto)",
            f"  inference        {_without_query(self.inference_url)}   (model {self.model_id}{backend})",
            f"  HTTP API         {self.api_url}   (GET /results, /results/{{id}}, …/annotated, …/frames)",
            f"  bucket           {bucket}",
            f"  results table    {self.resources.results_table}",
            f"  result events    {self.resources.event_bus_name}   (EventBridge; `s3kp events` follows it)",
            f"  logs             {self.options.log_dir if not self.options.verbose else 'this terminal'}",
            "",
            "In another shell:",
            *(f"  export {name}={value}" for name, value in env.items()),
            f"  aws --endpoint-url {self.aws_endpoint} s3 cp photo.jpg s3://{bucket}/{prefix}photo.jpg",
            f"  curl -s {self.api_url}/results",
            "",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)


def _start_quietly(worker: LambdaWorker) -> str | None:
    """Start a worker; the error message (with where its traceback is) if its cold start failed."""
    try:
        worker.start()
    except WorkerCrashed as error:
        return str(error)
    return None


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]  # a URL given by the user may carry an api_key query parameter


def _print_flush(line: str) -> None:
    print(line, flush=True)
