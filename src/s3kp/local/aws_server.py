"""The local AWS endpoint: moto's server app behind our guards, as `s3kp up` and the tests run it.

    python -m s3kp.local.aws_server [-H HOST] [-p PORT] [--allow-remote]   (what `s3kp up` starts)
    LocalAwsServer(host, port).start() / .stop()                           (in-process, for the tests)

moto's own server (`python -m moto.server`) answers any `Host` and reflects any `Origin` in CORS headers,
so a page elsewhere could read the local secret (a real Roboflow key with `--api-key`) or the uploads.
Here moto's WSGI app (the same `DomainDispatcherApplication` it serves) is wrapped: a request refused by
`HostGuard` gets a 403 before moto sees it, and no `Access-Control-*` header leaves (no origin is granted
CORS). `moto_sqs_lock` is installed before the first request.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

from s3kp.local.host_guard import REFUSED_STATUS, HostGuard
from s3kp.local.loopback_server import LoopbackServer

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class GuardedApp:
    """WSGI middleware: the guard's refusal as a 403, and moto's CORS headers removed from every answer."""

    def __init__(self, app: WsgiApp, guard: HostGuard) -> None:
        self._app = app
        self._guard = guard

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._guard.refusal(environ.get("HTTP_HOST"), environ.get("HTTP_ORIGIN"))
        if refusal is not None:
            body = json.dumps({"message": refusal}).encode()
            start_response(
                f"{REFUSED_STATUS} Forbidden",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]

        def without_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [
                (name, value) for name, value in headers if not name.lower().startswith("access-control-")
            ]
            return start_response(status, kept, exc_info)

        return self._app(environ, without_cors)


def guarded_moto_app(guard: HostGuard) -> GuardedApp:
    """moto's server app (every service, one state per process) behind `guard`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from s3kp.local import moto_sqs_lock

    moto_sqs_lock.install()
    return GuardedApp(DomainDispatcherApplication(create_backend_app), guard)


class LocalAwsServer(LoopbackServer):
    """The guarded moto server in a thread of this process (what moto's ThreadedMotoServer does), or in
    the calling thread (`serve_forever`, the process's own server). Werkzeug's server, not
    `loopback_server`'s: moto is a WSGI app, and the guard is applied in WSGI (`GuardedApp`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        app = guarded_moto_app(HostGuard.for_bind(host, allow_remote=allow_remote))
        # MotoRequestHandler keeps S3 metadata header names with underscores, as moto's server does.
        server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
        super().__init__(server, thread_name="local-aws")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m s3kp.local.aws_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-H", "--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument(
        "--allow-remote", action="store_true", help="bound off loopback on purpose: accept IP literal hosts"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto's server: the port in URLs it builds
    server = LocalAwsServer(args.host, args.port, allow_remote=args.allow_remote)
    for stop in (signal.SIGTERM, signal.SIGINT):  # as moto's server: a clean exit on either
        signal.signal(stop, lambda *_: sys.exit(0))
    print(f"local AWS endpoint (moto) on {server.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
