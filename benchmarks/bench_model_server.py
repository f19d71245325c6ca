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

The floor, measured in the same run: a bare ASGI app on the same uvicorn (httptools, uvloop), posted
the same body by the same client, that reads it, holds a worker thread busy for faces/1's median `time`
and answers a JSON of the same size. Its overhead is what the client, the HTTP stack and one thread hop
cost on this machine with no server code at all: the part of the overhead no server change can remove.
"""

from __future__ import annotations

import base64
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
# argv: port, seconds of work per request, response size in bytes.
_FLOOR_APP = """
import json, sys, time
import anyio, uvicorn

PORT, WORK_SECONDS, RESPONSE_BYTES = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])


def work() -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < WORK_SECONDS:
        pass
    return time.perf_counter() - started


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    took = 0.0 if scope["path"] == "/health" else await anyio.to_thread.run_sync(work)
    payload = json.dumps({"time": round(took, 5), "pad": ""}).encode()
    payload = payload[:-2] + b"x" * max(0, RESPONSE_BYTES - len(payload)) + payload[-2:]
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", server_header=False)
"""


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
        assert server.pid is not None
        peak_rss_mib = _peak_rss_mib(server.pid)
    faces = rows[0]
    floor = _floor_row(bodies["640 px"], faces["time_ms"], faces["response_bytes"], IMAGES[0][2])
    return _markdown(rows, throughput, peak_rss_mib, floor)


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


def _floor_row(body: bytes, work_ms: float, response_bytes: int, repeats: int) -> dict[str, float]:
    """The bare ASGI app (see the module's docstring), measured exactly as the model server."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-c", _FLOOR_APP, str(port), str(work_ms / 1000), str(response_bytes)]

    with subprocess_server("floor-asgi", command, "/health") as server, requests.Session() as session:
        for _ in range(2):
            _post(session, server.url, "faces/1", body)
        http_ms, time_ms = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            response = _post(session, server.url, "faces/1", body)
            http_ms.append((time.perf_counter() - started) * 1000)
            time_ms.append(float(response.json()["time"]) * 1000)
    total, in_server = statistics.median(http_ms), statistics.median(time_ms)
    return {"http_ms": total, "time_ms": in_server, "overhead_ms": total - in_server}


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
    floor: dict[str, float],
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
    faces = rows[0]
    ours_ms = float(str(faces["overhead_ms"]))
    lines += [
        "",
        "The floor of that overhead, same run: a bare ASGI app on the same uvicorn and client that holds a "
        f"worker thread for faces/1's `time` ({floor['time_ms']:.1f} ms) and answers as many bytes: HTTP "
        f"latency {floor['http_ms']:.1f} ms, overhead **{floor['overhead_ms']:.1f} ms "
        f"({100 * floor['overhead_ms'] / floor['http_ms']:.0f} % of its HTTP latency)**, against "
        f"{ours_ms:.1f} ms for the model server: our code adds {ours_ms - floor['overhead_ms']:.1f} ms.",
    ]
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
