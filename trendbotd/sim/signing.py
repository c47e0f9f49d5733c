"""Binance's request authentication: API key header, HMAC-SHA256 signature, time window."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from trendbotd.sim import errors

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
_SIGNATURE = re.compile(r"(^|&)signature=([^&]*)")


def sign(query: str, secret: str) -> str:
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def check_api_key(header: str | None, api_key: str) -> None:
    if not header:
        raise errors.api_key_format()
    if not hmac.compare_digest(header.encode(), api_key.encode()):
        raise errors.api_key_rejected()


def check_signature(query: str, body: str, secret: str) -> None:
    """``totalParams`` is the query string followed directly by the body, without the
    ``signature`` parameter itself; the signature is its hex HMAC-SHA256."""
    total = query + body
    match = _SIGNATURE.search(total)
    if match is None or not match.group(2):
        raise errors.mandatory("signature")
    payload = total[: match.start()] + total[match.end() :]
    if match.group(1) == "" and payload.startswith("&"):
        payload = payload[1:]
    expected = sign(payload, secret)
    if not hmac.compare_digest(expected, match.group(2).lower()):
        raise errors.bad_signature()


def check_timestamp(params: Mapping[str, str], server_ms: int) -> None:
    """Accept only ``timestamp < serverTime + 1000`` and
    ``serverTime - timestamp <= recvWindow``."""
    raw = params.get("timestamp")
    if not raw:
        raise errors.mandatory("timestamp")
    try:
        timestamp = int(raw)
        window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
    except ValueError:
        raise errors.illegal("timestamp") from None
    if window <= 0 or window > MAX_RECV_WINDOW_MS:
        raise errors.SimError(-1131, "recvWindow must be less than 60000")
    if timestamp >= server_ms + 1000:
        raise errors.timestamp_ahead()
    if server_ms - timestamp > window:
        raise errors.timestamp_outside_window()
