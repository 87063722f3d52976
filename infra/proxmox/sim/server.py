"""HTTPS for the simulator: the standard library's threading HTTP server behind TLS.

Not uvicorn: PVE puts its error messages in the HTTP reason phrase (`500 CT is locked (disk)`), and
proxmoxer reports `response.reason`; uvicorn always sends the standard phrase. `send_response(code,
message)` sends ours, and a 595 as well. One thread per connection, keep-alive (HTTP/1.1), and the TLS
handshake in that thread, so a slow client never holds up the others.
"""

from __future__ import annotations

import logging
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.proxmox.sim.app import Simulator

log = logging.getLogger("pve-sim.http")


class PveHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator, context: ssl.SSLContext) -> None:
        self.simulator = simulator
        self.context = context
        super().__init__(address, PveRequestHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, peer = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class PveRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end
    server: PveHTTPServer

    def setup(self) -> None:
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise
        super().setup()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = self.server.simulator.handle(self.command, self.path, headers, body)
        self.send_response(response.status, response.reason)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if response.cookie:
            self.send_header("Set-Cookie", response.cookie)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(simulator: Simulator, host: str, port: int, context: ssl.SSLContext) -> PveHTTPServer:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    PveHTTPServer.address_family = family
    return PveHTTPServer((host, port), simulator, context)
