"""A real nginx (Debian's package, installed by ``make nginx``) in front of a tiny upstream, with
``auth_request`` to a gate: the tests', the benchmark's and the drill's gateway.

nginx runs as a child in the foreground with its own prefix and configuration in a temporary
folder, on a free port of 127.0.0.1, logging to stderr, as one process (``master_process off``:
no workers that switch to another user, so it runs the same as root or not). The upstream is a
standard-library HTTP server that contains no Sessionwarden code: it answers 200 with the
tenant nginx passed on, and counts the requests that reached it (a refused request never
does). The nginx configuration is the one docs/GATEWAY.md shows.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sessionwarden.errors import SessionwardenError
from sessionwarden.testing.children import stop_child

NGINX = Path(os.environ.get("SESSIONWARDEN_NGINX", "/usr/sbin/nginx"))

LOCATIONS = """\
        # Every request is first asked of the gate; 2xx lets it through, 401/403 refuse it.
        location / {
            auth_request /_sessionwarden;
            auth_request_set $sw_reason $upstream_http_x_sessionwarden_reason;
            auth_request_set $sw_tenant $upstream_http_x_sessionwarden_tenant;
            add_header X-Sessionwarden-Reason $sw_reason always;
            proxy_set_header X-Sessionwarden-Tenant $sw_tenant;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
            # The gate's 503 (stale) and a gate that is down reach nginx as a 500: answer 503.
            error_page 500 = @sessionwarden_unavailable;
        }

        location = /_sessionwarden {
            internal;
            proxy_pass http://sessionwarden_gate;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 2s;
        }

        location @sessionwarden_unavailable {
            add_header Retry-After 1 always;
            add_header X-Sessionwarden-Reason unavailable always;
            return 503;
        }
"""


class NginxUnavailable(SessionwardenError):
    """No nginx binary here (``make nginx`` installs Debian's package)."""


def unavailable_reason() -> str | None:
    if not os.access(NGINX, os.X_OK):
        return f"nginx not found at {NGINX} (make nginx installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(
    prefix: Path, port: int, gate_port: int, app_port: int, unprotected: tuple[str, ...] = ()
) -> str:
    """The whole configuration; ``unprotected``: paths served WITHOUT asking the gate (the
    drill's deliberate weakening, which it must catch)."""
    temp = "\n".join(
        f"    {name}_temp_path {prefix / (name + '_temp')};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    bypass = "".join(
        f"        location ^~ {path} {{ proxy_pass http://app; }}  # weakened\n"
        for path in unprotected
    )
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
{temp}
    upstream sessionwarden_gate {{
        server 127.0.0.1:{gate_port};
        keepalive 32;
    }}
    upstream app {{
        server 127.0.0.1:{app_port};
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};

{bypass}{LOCATIONS}    }}
}}
"""


class Upstream:
    """The protected service: 200 with the tenant nginx names, counting what reached it."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with owner._lock:
                    owner.served += 1
                body = f"upstream ok {self.headers.get('X-Sessionwarden-Tenant', '')}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.served = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Nginx:
    """nginx on a free port of 127.0.0.1 asking the gate on ``gate_port``; ``close()`` stops it
    and the upstream. ``stderr`` is kept in ``<prefix>/stderr.log``."""

    def __init__(
        self,
        prefix: Path,
        gate_port: int,
        timeout: float = 10.0,
        unprotected: tuple[str, ...] = (),
    ) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NginxUnavailable(reason)
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        self.upstream = Upstream()
        self.port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(config(prefix, self.port, gate_port, self.upstream.port, unprotected))
        self._log = (prefix / "stderr.log").open("wb")
        self._proc = subprocess.Popen(
            [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self.close()
                raise NginxUnavailable(f"nginx exited at start: {self.stderr()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if time.monotonic() > deadline:
                self.close()
                raise NginxUnavailable(f"nginx did not listen within {timeout:g}s")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return (self.prefix / "stderr.log").read_text(errors="replace")

    def close(self) -> None:
        stop_child(self._proc, 10)
        self._log.close()
        self.upstream.close()
