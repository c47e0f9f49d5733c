"""The HTTP front of the simulated exchange: Binance's wire protocol on 127.0.0.1.

Each request: faults first (they act like the network or the exchange's front door),
then rate limit, route, authentication and the handler (faults that act inside the
exchange: a partial fill, an error after execution, follow it). Any failure becomes Binance's
error JSON; a traceback never reaches the client.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from trendbotd.sim import errors, ratelimit, signing
from trendbotd.sim.faults import Fault
from trendbotd.sim.params import Call
from trendbotd.sim.ports import HttpBackend
from trendbotd.sim.routes import ROUTES, Route

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
# faults that act like the network or the exchange's front door: nothing is executed
FAULTS_BEFORE = ("error", "http_status", "drop_before", "rate_limit")


@dataclass(frozen=True, slots=True)
class _Request:
    """One parsed request on its way to a route handler."""

    method: str
    path: str
    query: str
    body: str
    params: dict[str, str]
    fill_cap: Decimal | None = None  # a partial_fill fault: a market order fills this much


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: HttpBackend) -> None:
        self.sim = sim
        super().__init__(address, SimRequestHandler)


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    server: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sim.http " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # ----- plumbing -----

    def _handle(self, method: str) -> None:
        try:
            self._dispatch(method)
        except Exception:
            # never a traceback to the client: Binance's generic error, details in our log
            logger.exception("sim.request_failed method=%s path=%s", method, self.path)
            self._send_json(500, errors.unknown_error().body())
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        if url.path.startswith("/sim/"):
            status, payload = sim.control.handle(method, url.path, url.query, body)
            self._send_json(status, payload)
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if "json" not in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body, keep_blank_values=True))
        fault = sim.faults.take(method, url.path, params)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_ms / 1000)
            fault = None
        self._network_leg()  # the request's way in
        if fault is not None and fault.kind in FAULTS_BEFORE:
            sim.request_log.record(
                method, url.path, params, accepted=False, status=fault.reply_status()
            )
            self._network_leg()
            self._fail_before(fault)
            return
        fill_cap = None
        if fault is not None and fault.kind == "partial_fill":
            fill_cap = Decimal(fault.fill_qty)
            logger.info("sim.fault.partial_fill path=%s fill_qty=%s", url.path, fill_cap)
        req = _Request(method, url.path, url.query, body, params, fill_cap)
        status, payload, headers = self._execute(req)
        used = int(headers.get("X-MBX-USED-WEIGHT-1M", "0"))
        sim.request_log.record(
            method, url.path, params, accepted=status < 400, status=status, used_weight=used
        )
        if fault is not None and self._fail_after(fault, req):
            return
        self._network_leg()  # the reply's way back
        self._send_json(status, payload, headers=headers)

    def _read_body(self) -> str | None:
        """The request body (None: its length was refused, and the answer sent)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send_json(400, {"code": -1000, "msg": "Invalid Content-Length."})
            return None
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def _fail_after(self, fault: Fault, req: _Request) -> bool:
        """A fault after execution; True if it took the reply over."""
        if fault.kind == "error_after":
            # Executed, then the backend's answer was lost: Binance says "unknown".
            logger.info("sim.fault.error_after path=%s code=%s", req.path, fault.binance_code)
            self._network_leg()
            msg = fault.msg or "Internal error; unable to process your request. Please try again."
            self._send_json(fault.reply_status(), {"code": fault.binance_code, "msg": msg})
            return True
        if fault.kind == "drop_after":
            logger.info("sim.fault.drop_after method=%s path=%s", req.method, req.path)
            self._drop()
            return True
        if fault.kind == "timeout":
            logger.info(
                "sim.fault.timeout method=%s path=%s ms=%s", req.method, req.path, fault.delay_ms
            )
            time.sleep(fault.delay_ms / 1000)
        return False

    def _network_leg(self) -> None:
        """Half of ``response_delay_ms``, once on the way in and once on the way out: a
        network delays both directions, so serverTime sits mid-round-trip as on a real link
        (all of it before the handler would stamp the time late by the whole delay)."""
        delay_ms = self.server.sim.response_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 2000)

    def _execute(self, req: _Request) -> tuple[int, Any, dict[str, str]]:
        sim = self.server.sim
        method, path = req.method, req.path
        route = ROUTES.get((method, path))
        weight = ratelimit.request_weight(path, req.params, base=route.weight if route else 1)
        admission = sim.limiter.admit(weight, order=(method, path) in ratelimit.ORDER_PATHS)
        headers = admission.headers
        try:
            self._refuse_if_limited(admission)
            payload = self._run(req, route=route)
        except errors.SimError as e:
            if e.code not in (-2013, -2011):
                logger.info(
                    "sim.reject method=%s path=%s code=%s msg=%s", method, path, e.code, e.msg
                )
            return e.http_status, e.body(), headers
        except Exception:
            # the client gets Binance's generic answer; the traceback stays in our log
            logger.exception("sim.handler_failed method=%s path=%s", method, path)
            return 500, errors.unknown_error().body(), headers
        return 200, payload, headers

    def _refuse_if_limited(self, admission: ratelimit.Admission) -> None:
        limiter = self.server.sim.limiter
        if admission.status == 418:
            logger.warning("sim.ip_banned until_ms=%s", admission.banned_until_ms)
            raise errors.ip_banned(admission.banned_until_ms)
        if admission.status == 429 and admission.order_limit:
            interval = admission.order_limit
            raise errors.too_many_orders(limiter.order_limit(interval), interval)
        if admission.status == 429:
            raise errors.too_many_requests(limiter.limit)

    def _run(self, req: _Request, *, route: Route | None) -> Any:
        sim = self.server.sim
        if route is None:
            raise errors.not_found_path(req.method, req.path)
        now = sim.server_time_ms()
        if route.signed:
            signing.check_api_key(self.headers.get("X-MBX-APIKEY"), sim.api_key)
            signing.check_signature(req.query, req.body, sim.api_secret)
            signing.check_timestamp(req.params, now)
        call = Call(req.method, req.path, req.params, sim.state, sim.desk, now, req.fill_cap)
        return route.handler(call)

    def _fail_before(self, fault: Fault) -> None:
        logger.info(
            "sim.fault kind=%s method=%s path=%s", fault.kind, self.command, self.path.split("?")[0]
        )
        if fault.kind == "drop_before":
            self._drop()
        elif fault.kind == "rate_limit":
            self._send_json(429, errors.too_many_requests(self.server.sim.limiter.limit).body())
        elif fault.kind == "error":
            msg = fault.msg or "An unknown error occured while processing the request."
            self._send_json(fault.reply_status(), {"code": fault.binance_code, "msg": msg})
        else:
            text = (
                fault.body
                or f"<html><body><h1>{fault.reply_status()} Service Unavailable</h1></body></html>"
            )
            self._send_raw(fault.reply_status(), text.encode(), "text/html")

    def _drop(self) -> None:
        """Close the connection without any reply (RST, as a dead peer or proxy would)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as e:
            logger.debug("sim.drop.linger_failed err=%s", e)

    def _send_json(
        self, status: int, payload: Any, *, headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError as e:
            # the client gave up (e.g. its timeout fired during a withheld reply)
            logger.debug("sim.reply_failed err=%s", e)
            self.close_connection = True
