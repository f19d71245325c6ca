"""A Lambda Function URL's event (payload format 2.0) to a `V0Request`, and a `V0Answer` to its response.

The event carries the raw path and query string, lower-cased header names, and the body as text or, for
binary content types, as base64 (`isBase64Encoded`). The response's body is text for JSON and base64 for
the JPEG of `format=image`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from s3kp_models.v0_answer import V0Answer, V0Request


class MalformedEvent(ValueError):
    """Not a Function URL event (or a body marked base64 that is not): a 400, never a crash."""


def request_from_event(event: dict[str, Any]) -> V0Request:
    try:
        http = event["requestContext"]["http"]
        headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
        text = event.get("body") or ""
        body = base64.b64decode(text, validate=True) if event.get("isBase64Encoded") else text.encode()
        return V0Request(
            method=str(http["method"]).upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            query_string=str(event.get("rawQueryString") or "").encode("latin-1", errors="replace"),
            content_type=headers.get("content-type"),
            body=body,
        )
    except (KeyError, TypeError, AttributeError, binascii.Error, UnicodeEncodeError) as error:
        raise MalformedEvent(f"not a Function URL request ({type(error).__name__})") from None


def response_for(answer: V0Answer) -> dict[str, Any]:
    binary = not answer.content_type.startswith("application/json")
    return {
        "statusCode": answer.status,
        "headers": {"content-type": answer.content_type, **answer.headers},
        "body": base64.b64encode(answer.body).decode("ascii") if binary else answer.body.decode(),
        "isBase64Encoded": binary,
    }
