"""Keep the Roboflow API key (and any other registered secret) out of logs, exceptions and stored errors.

The key travels in the request's query string, so anything that echoes a URL (a `requests` exception,
a debug line) would leak it. Three layers of defence:

- `redact(text)` replaces any `api_key=…` / `"api_key": "…"` value, any `Authorization: Bearer …`
  credential and every registered secret (also in its URL-encoded forms) with `***`. A secret of
  `SUBSTRING_MIN_LENGTH` characters or more is masked wherever it appears; a shorter one (a test key such
  as `k`) only as a whole token, or it would mask letters of ordinary words (`api_***ey`, `***eypoints`);
- `ProcessingError` messages go through it on construction (see `s3kp_core.errors`);
- `install(logger)` puts a `RedactingFilter` on the logger's handlers and redacts the final JSON line a
  Powertools formatter produces, which also covers appended keys, `extra=` fields and tracebacks. It also
  filters the HTTP client's own loggers (urllib3 logs every request line, query string included, at
  DEBUG), whose records reach the root logger's handlers (Lambda's) and never pass ours.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from aws_lambda_powertools import Logger

MASK = "***"
SUBSTRING_MIN_LENGTH = 8
_WORD_CLASS = "A-Za-z0-9_.~-"  # what continues a token (a key, a parameter name)

# `api_key=VALUE` in a query string, `"api_key": "VALUE"` in JSON or a repr'd dict (also apiKey, api-key).
# The value stops at a URL, JSON or whitespace delimiter; a backslash stops it too, so JSON escapes survive.
_API_KEY_VALUE = re.compile(r"""(?i)(\bapi[_-]?key(?:\\?["'])?\s*[=:]\s*(?:\\?["'])?)([^\s&"'\\,;#)}\]]+)""")
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]+)")

# A filter on a logger only sees the records that logger creates, not its children's: so every module
# logger of urllib3 (2.x) and requests by name. `getLogger` creates them now if they are not yet imported.
HTTP_CLIENT_LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",  # "GET /p/1?api_key=… HTTP/1.1" 200
    "urllib3.poolmanager",  # redirects
    "urllib3.response",
    "urllib3.util.retry",  # "Incremented Retry for (url='…')"
    "urllib3.http2.connection",
    "urllib3.contrib.pyopenssl",
    "requests",
)

_registry: set[str] = set()
_registry_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact `value` from now on, everywhere in this process (empty values are ignored)."""
    if not value:
        return
    with _registry_lock:
        _registry.update(_variants(value))


def registered_secrets() -> frozenset[str]:
    with _registry_lock:
        return frozenset(_registry)


def unregister_all() -> None:
    """Forget every registered secret (for tests)."""
    with _registry_lock:
        _registry.clear()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with `api_key` values, bearer credentials and registered and given secrets masked."""
    # The patterns first: they keep the parameter's name intact whatever the secret looks like.
    text = _API_KEY_VALUE.sub(rf"\g<1>{MASK}", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    candidates = registered_secrets().union(*(_variants(s) for s in secrets if s))
    # Longest first, so a secret that contains another one is masked whole.
    for secret in sorted(candidates, key=len, reverse=True):
        if len(secret) >= SUBSTRING_MIN_LENGTH:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![{_WORD_CLASS}]){re.escape(secret)}(?![{_WORD_CLASS}])", MASK, text)
    return text


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside nested dicts, lists and tuples; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    if isinstance(value, BaseException):
        return redact(str(value))
    return value


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, arguments, exception and stack text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            # Merge the arguments first: a secret may only appear once they are interpolated.
            record.msg = redact(record.getMessage())
            record.args = None
        else:  # Powertools accepts dicts as structured messages
            record.msg = redact_value(record.msg)
            if record.args:
                record.args = redact_value(record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: Logger | logging.Logger) -> None:
    """Make every line `logger` and the HTTP client write secret-free; safe to call more than once.

    A Powertools logger gets the filter on its handler (which also sees its child loggers' records) and
    a redacting JSON serializer; a standard logger gets the filter on itself and on its handlers; the
    `HTTP_CLIENT_LOGGERS` get it on themselves, wherever their records are handled.
    """
    targets: list[logging.Logger | logging.Handler] = [logging.getLogger(n) for n in HTTP_CLIENT_LOGGERS]
    if isinstance(logger, logging.Logger):
        targets += [logger, *logger.handlers]
    else:
        targets.append(logger.registered_handler)
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
        if isinstance(target, logging.Handler):
            _redact_serialized_output(target.formatter)


def _redact_serialized_output(formatter: logging.Formatter | None) -> None:
    # Powertools formats the exception from `exc_info` itself and adds appended keys after the filters
    # ran, so the serialized JSON line is scrubbed as well.
    serializer: Callable[[Any], str] | None = getattr(formatter, "json_serializer", None)
    if serializer is None or getattr(serializer, "_s3kp_redacting", False):
        return

    def redacting_serializer(log: Any) -> str:
        return redact(serializer(log))

    redacting_serializer._s3kp_redacting = True  # type: ignore[attr-defined]
    formatter.json_serializer = redacting_serializer  # type: ignore[union-attr]


def _variants(secret: str) -> set[str]:
    # The forms a secret takes in a URL as `requests` or a browser would encode it.
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
