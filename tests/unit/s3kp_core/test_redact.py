"""Specification of secret redaction: the Roboflow API key never reaches a log line or an error text."""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
from aws_lambda_powertools import Logger
from s3kp_core.redact import MASK, RedactingFilter, install, redact, register_secret, unregister_all

KEY = "rf_live_K3y+With/Odd=Chars"


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    unregister_all()
    yield
    unregister_all()


def test_a_registered_secret_is_masked_anywhere_in_a_text() -> None:
    register_secret(KEY)

    assert redact(f"key {KEY} and again{KEY}!") == f"key {MASK} and again{MASK}!"


def test_a_secret_given_per_call_is_masked_without_registering_it() -> None:
    assert redact("token abc123xyz here", secrets=["abc123xyz"]) == f"token {MASK} here"
    assert redact("token abc123xyz here") == "token abc123xyz here"


def test_the_url_encoded_forms_of_a_registered_secret_are_masked() -> None:
    """`requests` percent-encodes the key in the URL it puts into exception messages."""
    register_secret(KEY)

    text = "https://h/p/1?api_key=rf_live_K3y%2BWith%2FOdd%3DChars&x=1 plus rf_live_K3y+With/Odd=Chars"

    assert "K3y" not in redact(text.replace("api_key=", "key="))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("POST /p/1?api_key=abc123&confidence=0.4", f"POST /p/1?api_key={MASK}&confidence=0.4"),
        ("https://h/p/1?format=json&API_KEY=abc123", f"https://h/p/1?format=json&API_KEY={MASK}"),
        ('{"api_key": "abc123", "model_id": "p/1"}', f'{{"api_key": "{MASK}", "model_id": "p/1"}}'),
        ("{'api_key': 'abc123'}", f"{{'api_key': '{MASK}'}}"),
        ('"message": "{\\"api_key\\": \\"abc123\\"}"', f'"message": "{{\\"api_key\\": \\"{MASK}\\"}}"'),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {MASK}"),
        ("{'Authorization': 'Bearer abc123'}", f"{{'Authorization': 'Bearer {MASK}'}}"),
    ],
)
def test_unregistered_keys_in_urls_json_and_auth_headers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_text_without_secrets_is_unchanged() -> None:
    text = "processed incoming/cat.jpg in 812 ms (3 detections), see https://h/p/1?confidence=0.4"

    assert redact(text) == text


def test_empty_secrets_are_ignored() -> None:
    register_secret("")

    assert redact("abc", secrets=[""]) == "abc"


def test_the_filter_scrubs_message_arguments_and_exception_text_for_stdlib_handlers() -> None:
    register_secret(KEY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test_redact.stdlib")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling %s", f"https://h/p/1?api_key={KEY}")
        try:
            raise RuntimeError(f"connection refused for ?api_key={KEY}")
        except RuntimeError:
            log.exception("inference failed")
    finally:
        log.removeHandler(handler)

    output = stream.getvalue()
    assert "calling https://h/p/1?api_key=***" in output
    assert "RuntimeError: connection refused" in output
    assert KEY not in output


def test_install_on_a_standard_logger_without_handlers_scrubs_what_it_propagates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_secret(KEY)
    log = logging.getLogger(f"test_redact.{uuid.uuid4().hex[:8]}")
    install(log)

    with caplog.at_level(logging.INFO):
        log.info("uvicorn-style access line: POST /p/1?api_key=%s", KEY)

    assert caplog.messages == ["uvicorn-style access line: POST /p/1?api_key=***"]


def _powertools_logger(stream: io.StringIO) -> Logger:
    # Powertools configures one stdlib logger per service name once: a fresh name per test.
    service = f"test-redact-{uuid.uuid4().hex[:8]}"
    return Logger(service=service, logger_handler=logging.StreamHandler(stream), level="DEBUG")


def test_a_powertools_logger_with_install_never_writes_the_key() -> None:
    """GIVEN a Powertools logger with redaction installed and a registered key
    WHEN the key appears in the message, its arguments, appended keys, extra fields and an exception
    THEN no JSON line contains it, and every line is still valid JSON."""
    register_secret(KEY)
    stream = io.StringIO()
    logger = _powertools_logger(stream)
    install(logger)
    install(logger)  # idempotent

    logger.append_keys(endpoint=f"https://h/p/1?api_key={KEY}")
    logger.info("request to %s", f"https://h/p/1?api_key={KEY}")
    logger.info({"url": f"https://h/p/1?api_key={KEY}", "attempt": 2})
    logger.info("retrying", extra={"last_error": f"timeout on ?api_key={KEY}"})
    try:
        raise ConnectionError(f"Max retries exceeded with url: /p/1?api_key={KEY}")
    except ConnectionError:
        logger.exception("inference failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert KEY not in stream.getvalue()
    assert "K3y" not in stream.getvalue()  # nor its URL-encoded form
    records = [json.loads(line) for line in lines]
    assert records[0]["message"] == "request to https://h/p/1?api_key=***"
    assert records[1]["message"] == {"url": "https://h/p/1?api_key=***", "attempt": 2}
    assert records[2]["last_error"] == "timeout on ?api_key=***"
    assert records[3]["exception_name"] == "ConnectionError"
    assert "api_key=***" in records[3]["exception"]
    assert handler_filters(logger) == 1


def handler_filters(logger: Logger) -> int:
    return sum(isinstance(f, RedactingFilter) for f in logger.registered_handler.filters)


def test_without_install_the_same_logger_would_leak_the_key() -> None:
    """The counterpart of the test above: proves the test can fail."""
    stream = io.StringIO()
    logger = _powertools_logger(stream)

    logger.info("request to %s", f"https://h/p/1?api_key={KEY}")

    assert KEY in stream.getvalue()


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def local_http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get_with_keys_in_the_query(url: str) -> None:
    # One registered key (URL-encoded by requests) and one the process never heard of.
    requests.get(f"{url}/p/1", params={"api_key": KEY, "other": "x"}, timeout=5).raise_for_status()
    requests.get(f"{url}/p/1?api_key=unregistered-secret-42", timeout=5).raise_for_status()


def test_install_also_redacts_the_http_clients_debug_request_lines(
    local_http_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN redaction installed for the service logger and logging at DEBUG everywhere
    WHEN requests calls a real local server with the key in the query string
    THEN urllib3's request lines are logged, but with the key masked."""
    register_secret(KEY)
    install(logging.getLogger(f"test_redact.{uuid.uuid4().hex[:8]}"))

    with caplog.at_level(logging.DEBUG):
        _get_with_keys_in_the_query(local_http_url)

    request_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"GET /p/1?api_key=*** HTTP/1.1" 200' in line for line in request_lines), request_lines
    assert "K3y" not in caplog.text
    assert "unregistered-secret-42" not in caplog.text


def test_without_install_urllib3_would_log_the_key(
    local_http_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counterpart of the test above: urllib3 really does write the query string at DEBUG."""
    for name in ("urllib3.connectionpool", "urllib3"):
        monkeypatch.setattr(logging.getLogger(name), "filters", [])

    with caplog.at_level(logging.DEBUG):
        _get_with_keys_in_the_query(local_http_url)

    assert "unregistered-secret-42" in caplog.text


def test_a_short_secret_is_masked_as_a_token_without_mangling_the_parameter_name() -> None:
    """A one-letter test key used to turn `api_key=k` into `api_***ey=***` in a stored reason."""
    register_secret("k")

    text = "POST /faces/1?confidence=0.4&format=json&api_key=k (keypoints k, key=k)"

    assert (
        redact(text)
        == f"POST /faces/1?confidence=0.4&format=json&api_key={MASK} (keypoints {MASK}, key={MASK})"
    )


def test_a_long_secret_is_still_masked_inside_other_text() -> None:
    register_secret("rf_live_0123456789")

    assert redact("prefixrf_live_0123456789suffix") == f"prefix{MASK}suffix"
