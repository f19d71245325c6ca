"""End-to-end HTTP cost of the local inference server: latency, server overhead, throughput, memory.

Runs `s3kp model-server` as a real process and posts base64 JPEGs the way roboflow-python does.
What the server measures itself, per request (its `Server-Timing` header):
- decode: base64 and JPEG decoding to RGB pixels;
- model: the pipeline's `predict`, i.e. its own pre-processing (letterbox/crop warps), the TFLite models
  and its post-processing (anchors, NMS, landmark projection);
- total: decode + model + building the predictions = the response's `time` (Roboflow's servers' `time`
  also runs from the request's image to the predictions).
Server overhead = HTTP latency - `time`: the HTTP round trip (client included), request parsing and
validation, the hop to a worker thread, JSON encoding. HTTP latency - model is shown too: everything
but the model.

The floor, measured in the same run, the model server and the floors taking turns in short blocks (so the
machine's load falls on all alike): bare apps posted the same body by the same client, that read it, hold
a thread busy for faces/1's median `time` and answer a JSON of the same size. Each row is one way to
serve it: uvicorn (httptools, uvloop) with the work in a worker thread handed over as the server did
before (anyio's `to_thread.run_sync` with a CapacityLimiter) and as it does now (a ThreadPoolExecutor),
or on the event loop itself (no thread hop: what running inference on the loop would give); granian
(a Rust HTTP server: RSGI on its loop, WSGI in its own thread) when it is installed (it is not a
dependency: `pip install granian` adds its rows); and the on-loop app posted with `http.client` instead
of `requests` (not the official clients' way: it shows the client's own share; the model server is
posted that way too, in its own row). Their overhead is what
the client, the HTTP stack and the hand-over cost on this machine with no server code at all. Two more
bare apps run faces/1's own inference of the posted body (`run_inference`, as the server does) instead of
a busy wait, in a ThreadPoolExecutor worker and on the loop: the model server without its HTTP code.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from benchmarks.servers import model_server, subprocess_server
from s3kp import samples

API_KEY = "bench-key"
MODELS = ("faces/1", "pose/1")
# (label, long side, timed requests): 3464 px square is 12.0 megapixels
IMAGES = (("640 px", 640, 40), ("12 MP", 3464, 9))
CONCURRENT_CLIENTS = 4
CONCURRENT_REQUESTS = 32
TIMEOUT = 120
# The model server and the floors take turns in blocks: FLOOR_ROUNDS blocks of FLOOR_BLOCK requests each,
# the first FLOOR_BLOCK_WARM of a block not counted (a turn starts with caches the others have used).
FLOOR_ROUNDS, FLOOR_BLOCK, FLOOR_BLOCK_WARM = 12, 10, 2
# The bare app: argv port; environment FLOOR_WORK_SECONDS, FLOOR_RESPONSE_BYTES and FLOOR_HOP (anyio,
# executor or loop: a busy wait; inference-executor or inference-loop: faces/1's own inference of the
# body, as the model server runs it); `app` (ASGI), `rsgi_app` and `wsgi_app` for granian.
_FLOOR_APP = """
import asyncio, json, os, sys, time
from concurrent.futures import ThreadPoolExecutor

import anyio

WORK_SECONDS = float(os.environ["FLOOR_WORK_SECONDS"])
RESPONSE_BYTES = int(os.environ["FLOOR_RESPONSE_BYTES"])
HOP = os.environ.get("FLOOR_HOP", "loop")
LIMITER = anyio.CapacityLimiter(2) if HOP == "anyio" else None
EXECUTOR = ThreadPoolExecutor(2) if HOP in ("executor", "inference-executor") else None
BODY = b""
if HOP.startswith("inference-"):  # the model server's own inference of the body, not a busy wait
    from s3kp.model_server.allocator import keep_freed_memory
    from s3kp_models.model_runner import run_inference
    from s3kp_models.params import InferenceParams
    from s3kp_models.pipelines.registry import load_pipelines
    from s3kp_models.request_decoding import ImageLimits, decode_base64_body

    keep_freed_memory()
    FACES, PARAMS, LIMITS = load_pipelines(model_dir())["faces/1"], InferenceParams(), ImageLimits()


def work() -> float:
    if HOP.startswith("inference-"):
        return run_inference(FACES, lambda: decode_base64_body(BODY), PARAMS, LIMITS).response["time"]
    started = time.perf_counter()
    while time.perf_counter() - started < WORK_SECONDS:
        pass
    return time.perf_counter() - started


async def hop(path: str) -> float:
    if path == "/health":
        return 0.0
    if LIMITER is not None:
        return await anyio.to_thread.run_sync(work, limiter=LIMITER)
    if EXECUTOR is not None:
        return await asyncio.get_running_loop().run_in_executor(EXECUTOR, work)
    return work()


def answer(took: float) -> bytes:
    payload = json.dumps({"time": round(took, 5), "pad": ""}).encode()
    return payload[:-2] + b"x" * max(0, RESPONSE_BYTES - len(payload)) + payload[-2:]


async def app(scope, receive, send):
    global BODY
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    BODY = b"".join(chunks)  # one request at a time: the benchmark's client is sequential
    payload = answer(await hop(scope["path"]))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def rsgi_app(scope, protocol):
    await protocol()
    protocol.response_bytes(200, [("content-type", "application/json")], answer(await hop(scope.path)))


def wsgi_app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    payload = answer(0.0 if environ["PATH_INFO"] == "/health" else work())
    start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(payload)))])
    return [payload]


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", server_header=False)
"""


@dataclass(frozen=True)
class Floor:
    label: str
    hop: str  # how the work is handed over (FLOOR_HOP), or "granian" for granian's own thread
    server: str  # uvicorn, granian-rsgi, granian-wsgi
    client: str = "requests"  # or http.client


SERVER_WITH_HTTP_CLIENT = "`s3kp model-server`, posted with `http.client`"
FLOORS = (
    Floor("uvicorn, worker thread via anyio (the server before)", "anyio", "uvicorn"),
    Floor("uvicorn, worker thread via a ThreadPoolExecutor (the server now)", "executor", "uvicorn"),
    Floor("uvicorn, on the event loop (no thread hop)", "loop", "uvicorn"),
    Floor("granian RSGI, on its event loop (no thread hop)", "loop", "granian-rsgi"),
    Floor("granian WSGI, in granian's own thread", "granian", "granian-wsgi"),
    Floor("uvicorn, on the event loop, posted with `http.client`", "loop", "uvicorn", client="http.client"),
    Floor("uvicorn, faces/1's own inference in a ThreadPoolExecutor worker", "inference-executor", "uvicorn"),
    Floor("uvicorn, faces/1's own inference on the event loop", "inference-loop", "uvicorn"),
)


def run() -> str:
    bodies = {label: base64.b64encode(samples.upscaled_jpeg("astronaut", side)) for label, side, _ in IMAGES}
    with model_server(API_KEY) as server:
        with requests.Session() as session:
            rows = [
                _latency_row(session, server.url, model, label, bodies[label], repeats)
                for model in MODELS
                for label, _, repeats in IMAGES
            ]
            throughput = [_throughput_row(server.url, model, bodies["640 px"]) for model in MODELS]
            faces = rows[0]
            floors = _side_by_side(
                session, server.url, bodies["640 px"], response_bytes=int(str(faces["response_bytes"]))
            )
        assert server.pid is not None
        peak_rss_mib = _peak_rss_mib(server.pid)
    return _markdown(rows, throughput, peak_rss_mib, floors)


def _latency_row(
    session: requests.Session, url: str, model: str, label: str, body: bytes, repeats: int
) -> dict[str, object]:
    for _ in range(2):  # warm-up: first calls allocate buffers
        _post(session, url, model, body)
    http_ms, time_ms, decode_ms, model_ms = [], [], [], []
    response_bytes = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = _post(session, url, model, body)
        http_ms.append((time.perf_counter() - started) * 1000)
        response_bytes = len(response.content)
        time_ms.append(float(response.json()["time"]) * 1000)
        timing = _server_timing(response.headers["Server-Timing"])
        decode_ms.append(timing["decode"])
        model_ms.append(timing["model"])
    total, in_server = statistics.median(http_ms), statistics.median(time_ms)
    in_model = statistics.median(model_ms)
    return {
        "model": model,
        "image": label,
        "body_mib": len(body) / 2**20,
        "http_ms": total,
        "time_ms": in_server,
        "decode_ms": statistics.median(decode_ms),
        "model_ms": in_model,
        "overhead_ms": total - in_server,
        "overhead_pct": 100 * (total - in_server) / total,
        "not_model_pct": 100 * (total - in_model) / total,
        "response_bytes": response_bytes,
    }


def _side_by_side(
    session: requests.Session, url: str, body: bytes, *, response_bytes: int
) -> list[dict[str, object]]:
    """faces/1 at 640 px and every floor (see the module's docstring), taking turns."""
    floors = [f for f in FLOORS if f.server == "uvicorn" or importlib.util.find_spec("granian") is not None]
    posts: dict[str, Callable[[], tuple[float, float]]] = {
        "`s3kp model-server`": lambda: _timed_post(lambda: _post(session, url, "faces/1", body).content)
    }
    # The floors work as long as faces/1's `time` right now, so their shares compare with the server's.
    work_ms = statistics.median(posts["`s3kp model-server`"]()[1] for _ in range(2 * FLOOR_BLOCK))
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        app_file = Path(folder) / "bench_floor_app.py"
        app_file.write_text(_FLOOR_APP)
        # The server itself with the leanest client: what it costs without `requests`' share.
        posts[SERVER_WITH_HTTP_CLIENT] = _http_client_poster(stack, url, body)
        for index, floor in enumerate(floors):
            floor_url = stack.enter_context(_floor_server(index, floor, app_file, work_ms, response_bytes))
            posts[floor.label] = _floor_poster(stack, floor, floor_url, body)
        timings: dict[str, list[tuple[float, float]]] = {label: [] for label in posts}
        for _ in range(FLOOR_ROUNDS):
            for label, post in posts.items():
                block = [post() for _ in range(FLOOR_BLOCK)]
                timings[label] += block[FLOOR_BLOCK_WARM:]
    rows: list[dict[str, object]] = []
    for label, pairs in timings.items():
        http_ms = statistics.median(h for h, _ in pairs)
        rows.append(
            {
                "label": label,
                "http_ms": http_ms,
                "time_ms": statistics.median(t for _, t in pairs),
                "overhead_ms": statistics.median(h - t for h, t in pairs),
                "overhead_pct": statistics.median(100 * (h - t) / h for h, t in pairs),
            }
        )
    return rows


def _timed_post(post: Callable[[], bytes]) -> tuple[float, float]:
    """(HTTP latency, the answer's `time`), in milliseconds."""
    started = time.perf_counter()
    content = post()
    elapsed = time.perf_counter() - started
    return elapsed * 1000, float(json.loads(content)["time"]) * 1000


@contextmanager
def _floor_server(
    index: int, floor: Floor, app_file: Path, work_ms: float, response_bytes: int
) -> Iterator[str]:
    def command(port: int) -> list[str]:
        if floor.server == "uvicorn":
            return [sys.executable, str(app_file), str(port)]
        interface = floor.server.removeprefix("granian-")
        threads = ["--blocking-threads", "2"] if interface == "wsgi" else []  # as the server's 2 threads
        return [
            sys.executable, "-m", "granian", "--interface", interface, "--host", "127.0.0.1",
            "--port", str(port), "--no-ws", "--log-level", "warning", *threads,
            "--working-dir", str(app_file.parent), f"{app_file.stem}:{interface}_app",
        ]  # fmt: skip

    environment = os.environ | {
        "FLOOR_WORK_SECONDS": str(work_ms / 1000),
        "FLOOR_RESPONSE_BYTES": str(response_bytes),
        "FLOOR_HOP": floor.hop,
    }
    with subprocess_server(f"floor-{index}", command, "/health", env=environment) as server:
        yield server.url


def _floor_poster(stack: ExitStack, floor: Floor, url: str, body: bytes) -> Callable[[], tuple[float, float]]:
    if floor.client == "http.client":
        return _http_client_poster(stack, url, body)
    session = stack.enter_context(requests.Session())
    return lambda: _timed_post(lambda: _post(session, url, "faces/1", body).content)


def _http_client_poster(stack: ExitStack, url: str, body: bytes) -> Callable[[], tuple[float, float]]:
    """Posts `body` to faces/1 over one keep-alive `http.client` connection: the leanest Python client."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT)
    stack.callback(connection.close)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def plain() -> bytes:
        connection.request("POST", f"/faces/1?api_key={API_KEY}", body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        assert response.status == 200, response.status
        return content

    return lambda: _timed_post(plain)


def _server_timing(header: str) -> dict[str, float]:
    """`decode;dur=1.2, model;dur=3.4, total;dur=4.9` -> {"decode": 1.2, ...} (milliseconds)."""
    metrics = (part.strip().split(";dur=") for part in header.split(","))
    return {name: float(duration) for name, duration in metrics}


def _throughput_row(url: str, model: str, body: bytes) -> dict[str, object]:
    def one(session: requests.Session) -> None:
        _post(session, url, model, body)

    def images_per_second(clients: int) -> float:
        sessions = [requests.Session() for _ in range(clients)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, (sessions[i % clients] for i in range(CONCURRENT_REQUESTS))))
        elapsed = time.perf_counter() - started
        for session in sessions:
            session.close()
        return CONCURRENT_REQUESTS / elapsed

    sequential = images_per_second(1)
    concurrent = images_per_second(CONCURRENT_CLIENTS)
    return {
        "model": model,
        "sequential": sequential,
        "concurrent": concurrent,
        "ratio": concurrent / sequential,
    }


def _post(session: requests.Session, url: str, model: str, body: bytes) -> requests.Response:
    response = session.post(
        f"{url}/{model}",
        params={"api_key": API_KEY},
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return response


def _markdown(
    rows: list[dict[str, object]],
    throughput: list[dict[str, object]],
    peak_rss_mib: float,
    floors: list[dict[str, object]],
) -> str:
    lines = [
        "### Inference server over HTTP",
        "",
        "`s3kp model-server` as a real process (default threads), astronaut JPEG (quality 92) posted as "
        "base64 the way roboflow-python does; medians. `time` is the response's `time`: base64 + JPEG "
        "decoding (*decode*) and the model with its pre- and post-processing (*model*, the pipeline's "
        "`predict`), as the server reports them in `Server-Timing`. Server overhead = HTTP latency - "
        "`time` (HTTP round trip with the client, request validation, thread hop, JSON). Goal: overhead "
        "< 20 % at 640 px. The last column counts everything but the model, decoding included.",
        "",
        "| model | image | body (MiB) | HTTP latency (ms) | `time` (ms) | decode (ms) | model (ms) "
        "| overhead (ms) | overhead (% of HTTP) | HTTP - model (% of HTTP) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['image']} | {r['body_mib']:.2f} | {r['http_ms']:.1f} | {r['time_ms']:.1f} "
        f"| {r['decode_ms']:.1f} | {r['model_ms']:.1f} | {r['overhead_ms']:.1f} | {r['overhead_pct']:.0f} % "
        f"| {r['not_model_pct']:.0f} % |"
        for r in rows
    ]
    lines += [
        "",
        "The floor of that overhead, same run: faces/1 at 640 px and bare apps that hold a thread for "
        f"faces/1's `time` (its median over {2 * FLOOR_BLOCK} requests just before) and answer as many "
        f"bytes, taking turns: {FLOOR_ROUNDS} rounds of {FLOOR_BLOCK} "
        f"requests each, the first {FLOOR_BLOCK_WARM} of a turn not counted (the machine's load falls on all "
        "alike); medians of each request's own figures:",
        "",
        "| server | HTTP latency (ms) | `time` (ms) | overhead (ms) | overhead (% of HTTP) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f['label']} | {f['http_ms']:.2f} | {f['time_ms']:.2f} | {f['overhead_ms']:.2f} "
        f"| {f['overhead_pct']:.1f} % |"
        for f in floors
    ]
    ours = float(str(floors[0]["overhead_ms"]))
    same_hop = float(str(next(f for f in floors if f["label"] == FLOORS[1].label)["overhead_ms"]))
    same_work = float(str(next(f for f in floors if f["label"] == FLOORS[6].label)["overhead_ms"]))
    lines += [
        "",
        f"The model server's overhead is {ours - same_hop:+.2f} ms from the busy-wait floor with the same "
        f"thread hop and {ours - same_work:+.2f} ms from a bare app running the same inference the same way: "
        "the latter is what the server adds around the same inference (FastAPI's shell, the middlewares, "
        "the fast path, the response, the access log line).",
    ]
    lean = next((f for f in floors if f["label"] == SERVER_WITH_HTTP_CLIENT), None)
    if lean is not None:
        lean_ms, lean_pct = float(str(lean["overhead_ms"])), float(str(lean["overhead_pct"]))
        lines[-1] += (
            f" Posted with `http.client`, the model server's own overhead is {lean_ms:.2f} ms, "
            f"{lean_pct:.1f} % of its round trip: what it costs without `requests`' share."
        )
    if not any(f["label"] == FLOORS[3].label for f in floors):
        lines.append(
            "granian is not installed here: its rows are left out (`pip install granian` adds them)."
        )
    lines += [
        "",
        f"Throughput, 640 px, {CONCURRENT_REQUESTS} requests (baseline: one client at a time, same process):",
        "",
        f"| model | 1 client (images/s) | {CONCURRENT_CLIENTS} clients (images/s) | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {t['model']} | {t['sequential']:.1f} | {t['concurrent']:.1f} | {t['ratio']:.2f}x |"
        for t in throughput
    ]
    lines += ["", f"Peak RSS of the server process (VmHWM, all four models loaded): {peak_rss_mib:.0f} MiB."]
    return "\n".join(lines)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


if __name__ == "__main__":
    print(run())
