"""The API key, and a signed request's credentials, never reach an X-Ray trace document.

With `Tracing: Active` the X-Ray SDK patches `requests` (through `s3kp_core.observability`'s Tracer) and
records every outgoing call's URL and any exception it raises. The test runs exactly that in a fresh
interpreter (the patches are process-wide): the real Tracer patches, a recorder whose emitter keeps every
document, and the real inference client against a closed port and a real local HTTP server answering
401 (echoing the key), 429, 500, garbage, a 200 without `predictions`, a reset connection and a stall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from urllib.parse import quote, quote_plus

from tests.conftest import ROOT, free_port

API_KEY = "rf_TRACE/k3y+secret=9"  # characters that URL encoding changes, to catch every form
SESSION_TOKEN = "TRACE-session-token-0123456789"  # the role's credential of a signed request

SCENARIO = textwrap.dedent(
    """
    import http.server, json, socket, struct, sys, threading, time

    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.context import Context

    from s3kp_core.observability import tracer  # applies the Tracer's patches, as at cold start
    from s3kp_core.errors import ProcessingError
    from s3kp_core.inference import InferenceClient, InferenceSettings

    API_KEY, CLOSED_PORT, SESSION_TOKEN = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    documents = []

    class Emitter:
        def send_entity(self, entity):
            documents.append(entity.serialize())

        def set_daemon_address(self, address):
            pass

    xray_recorder.configure(context=Context(), emitter=Emitter(), sampling=False, streaming_threshold=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            mode = self.path.split("/")[1]
            if mode == "reset":
                linger = struct.pack("ii", 1, 0)  # close with RST: a reset connection
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
                return
            if mode == "stall":
                time.sleep(1.0)
            status, body = {
                "unauthorized": (401, json.dumps({"message": f"api_key {API_KEY} is not valid"})),
                "throttled": (429, json.dumps({"message": "slow down"})),
                "broken": (500, f"Traceback: request ?api_key={API_KEY} failed"),
                "garbage": (200, "<html>gateway</html>"),
                "shapeless": (200, json.dumps({"message": "ok"})),
                "stall": (200, "{}"),
            }[mode]
            payload = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = f"http://127.0.0.1:{server.server_address[1]}"

    @tracer.capture_method(capture_response=False)
    def predict(client):
        return client.predict(b"not really a jpeg")

    outcomes = {}
    cases = [(f"http://127.0.0.1:{CLOSED_PORT}", "closed")] + [
        (served, mode)
        for mode in ("unauthorized", "throttled", "broken", "garbage", "shapeless", "reset", "stall")
    ]
    for base_url, mode in cases:
        client = InferenceClient(
            InferenceSettings(base_url=base_url, model_id=f"{mode}/1", api_key=API_KEY, max_attempts=2,
                              confidence=0.4, overlap=0.3, classes=(),
                              connect_timeout=0.5, read_timeout=0.3, backoff_base=0.01, backoff_cap=0.01),
        )
        xray_recorder.begin_segment(f"case-{mode}")
        try:
            predict(client)
            outcomes[mode] = "ok"
        except ProcessingError as error:
            outcomes[mode] = error.code
        finally:
            xray_recorder.end_segment()
            client.close()
    # The stack's own InferenceFunction: signed requests (SigV4), no key; the signature stays out too.
    from botocore.credentials import Credentials
    from s3kp_core.request_signing import RequestSigner

    signer = RequestSigner(Credentials("AKIDTRACE", "trace-secret", SESSION_TOKEN), "us-east-1")
    for mode in ("unauthorized", "reset"):
        client = InferenceClient(
            InferenceSettings(base_url=served, model_id=f"{mode}/2", api_key=None, auth="aws_iam",
                              max_attempts=2, confidence=0.4, overlap=0.3, classes=(),
                              connect_timeout=0.5, read_timeout=0.3, backoff_base=0.01, backoff_cap=0.01),
            signer=signer,
        )
        xray_recorder.begin_segment(f"signed-{mode}")
        try:
            predict(client)
            outcomes[f"signed {mode}"] = "ok"
        except ProcessingError as error:
            outcomes[f"signed {mode}"] = error.code
        finally:
            xray_recorder.end_segment()
            client.close()
    print(json.dumps({"outcomes": outcomes, "documents": documents}))
    """
)


def test_no_trace_document_carries_the_api_key() -> None:
    environment = os.environ | {
        # What makes Powertools' Tracer enable itself and patch the modules it is given.
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-ingest-trace-test",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_SERVICE_NAME": "s3kp-ingest",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    completed = subprocess.run(
        [sys.executable, "-c", SCENARIO, API_KEY, str(free_port()), SESSION_TOKEN],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["outcomes"] == {
        "closed": "inference_unavailable",
        "unauthorized": "inference_unauthorized",
        "throttled": "inference_unavailable",
        "broken": "inference_unavailable",
        "garbage": "inference_bad_response",
        "shapeless": "inference_bad_response",
        "reset": "inference_unavailable",
        "stall": "inference_unavailable",
        "signed unauthorized": "inference_unauthorized",
        "signed reset": "inference_unavailable",
    }
    documents = report["documents"]
    traced_calls = [d for d in documents if '"namespace": "remote"' in d or '"namespace":"remote"' in d]
    assert len(traced_calls) >= 8, "the requests patch recorded no HTTP calls: the test would prove nothing"
    assert any('"exceptions"' in d for d in traced_calls), "no exception was recorded on an HTTP call"
    for form in {API_KEY, quote(API_KEY, safe=""), quote_plus(API_KEY, safe=""), "k3y"}:
        leaking = [d for d in documents if form in d]
        assert not leaking, f"{len(leaking)} of {len(documents)} trace documents carry the key: {leaking[0]}"
    for credential in (SESSION_TOKEN, "Signature=", "AKIDTRACE"):
        leaking = [d for d in documents if credential in d]
        assert not leaking, f"{len(leaking)} trace documents carry {credential}: {leaking[0]}"
