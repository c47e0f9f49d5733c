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
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from trendbotd.sim import errors, ratelimit, routes_account, routes_market, routes_trade, signing
from trendbotd.sim.faults import Fault
from trendbotd.sim.params import Call, Handler

if TYPE_CHECKING:
    from trendbotd.sim.exchange import SimExchange

logger = logging.getLogger(__name__)

PUBLIC: dict[tuple[str, str], tuple[Handler, int]] = dict(routes_market.ROUTES)
SIGNED: dict[tuple[str, str], tuple[Handler, int]] = {
    **routes_account.ROUTES,
    **routes_trade.ROUTES,
}
MAX_BODY = 1 << 20


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: SimExchange) -> None:
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
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send_json(400, {"code": -1000, "msg": "Invalid Content-Length."})
            return
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
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
        if fault is not None and fault.kind in (
            "error",
            "http_status",
            "drop_before",
            "rate_limit",
        ):
            sim.record(method, url.path, params, accepted=False, status=fault.reply_status())
            self._network_leg()
            self._fail_before(fault)
            return
        fill_cap = None
        if fault is not None and fault.kind == "partial_fill":
            fill_cap = Decimal(fault.fill_qty)
            logger.info("sim.fault.partial_fill path=%s fill_qty=%s", url.path, fill_cap)
        status, payload, headers = self._execute(
            method, url.path, url.query, body, params, fill_cap=fill_cap
        )
        sim.record(method, url.path, params, accepted=status < 400, status=status)
        if fault is not None and fault.kind == "error_after":
            # Executed, then the backend's answer was lost: Binance says "unknown".
            logger.info("sim.fault.error_after path=%s code=%s", url.path, fault.binance_code)
            self._network_leg()
            msg = fault.msg or "Internal error; unable to process your request. Please try again."
            self._send_json(fault.reply_status(), {"code": fault.binance_code, "msg": msg})
            return
        if fault is not None and fault.kind == "drop_after":
            logger.info("sim.fault.drop_after method=%s path=%s", method, url.path)
            self._drop()
            return
        if fault is not None and fault.kind == "timeout":
            logger.info(
                "sim.fault.timeout method=%s path=%s ms=%s", method, url.path, fault.delay_ms
            )
            time.sleep(fault.delay_ms / 1000)
        self._network_leg()  # the reply's way back
        self._send_json(status, payload, headers=headers)

    def _network_leg(self) -> None:
        """Half of ``response_delay_ms``, once on the way in and once on the way out: a
        network delays both directions, so serverTime sits mid-round-trip as on a real link
        (all of it before the handler would stamp the time late by the whole delay)."""
        delay_ms = self.server.sim.config.response_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 2000)

    def _execute(
        self,
        method: str,
        path: str,
        query: str,
        body: str,
        params: dict[str, str],
        *,
        fill_cap: Decimal | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sim = self.server.sim
        route = PUBLIC.get((method, path)) or SIGNED.get((method, path))
        weight = ratelimit.request_weight(path, params, base=route[1] if route else 1)
        admission = sim.limiter.admit(weight, order=(method, path) in ratelimit.ORDER_PATHS)
        headers = admission.headers
        try:
            self._refuse_if_limited(admission)
            payload = self._run(method, path, query, body, params, route=route, fill_cap=fill_cap)
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

    def _run(
        self,
        method: str,
        path: str,
        query: str,
        body: str,
        params: dict[str, str],
        *,
        route: tuple[Handler, int] | None,
        fill_cap: Decimal | None = None,
    ) -> Any:
        sim = self.server.sim
        if route is None:
            raise errors.not_found_path(method, path)
        now = sim.server_time_ms()
        if (method, path) in SIGNED:
            signing.check_api_key(self.headers.get("X-MBX-APIKEY"), sim.api_key)
            signing.check_signature(query, body, sim.api_secret)
            signing.check_timestamp(params, now)
        return route[0](Call(method, path, params, sim.state, now, fill_cap=fill_cap))

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
