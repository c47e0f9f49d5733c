"""Deterministic client order ids.

The same decision (instance, symbol, candle open time, intent sequence, purpose) always
yields the same id, so an intent re-derived after a restart can be looked up on the
exchange instead of being sent twice. Layout, at most 36 characters of Binance's
``[A-Za-z0-9._:/-]`` (the rule for both newClientOrderId and clientAlgoId)::

    tb-<inst4>-<BASE>-<candle36>-<p><seq>-<hash8>
    tb-1f3a-BTC-sfd0xs-e0-9c0e1a7b

``inst4`` tags the instance (orders of another instance on the same account are
recognisable), ``candle36`` is the candle open time in seconds, base 36, ``p`` the purpose
letter. ``hash8`` covers every input in full (instance, whole symbol, exact milliseconds),
so ids that share their readable parts still differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from trendbotd.core.records import Purpose

MAX_LEN = 36
PREFIX = "tb"
ALLOWED = re.compile(r"^[A-Za-z0-9._:/-]{1,36}$")
_PURPOSE_LETTER = {
    Purpose.ENTRY: "e",
    Purpose.STOP: "s",
    Purpose.EXIT: "x",
    Purpose.FLATTEN: "f",
}
_LETTER_PURPOSE = {v: k for k, v in _PURPOSE_LETTER.items()}
_PARSE = re.compile(
    r"^tb-(?P<inst>[0-9a-f]{4})-(?P<base>[A-Z0-9]{0,8})-(?P<candle>[0-9a-z]+)-"
    r"(?P<p>[esxf])(?P<seq>[0-9]+)-(?P<hash>[0-9a-f]{8})$"
)
_ALNUM36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class ParsedClientId:
    instance_tag: str
    base: str
    candle_time_s: int
    purpose: Purpose
    seq: int


def instance_tag(instance: str) -> str:
    return hashlib.sha256(instance.encode()).hexdigest()[:4]


def make_client_id(
    *, instance: str, symbol: str, candle_time_ms: int, seq: int, purpose: Purpose
) -> str:
    """The id for one intent. Plain and algo (stop) orders use the same scheme."""
    if candle_time_ms < 0:
        raise ValueError(f"candle time must not be negative: {candle_time_ms}")
    if not 0 <= seq <= 99_999:
        raise ValueError(f"intent sequence out of range: {seq}")
    digest = hashlib.sha256(
        f"{instance}\x00{symbol}\x00{candle_time_ms}\x00{seq}\x00{purpose.value}".encode()
    ).hexdigest()[:8]
    head = f"{PREFIX}-{instance_tag(instance)}-"
    tail = f"-{_base36(candle_time_ms // 1000)}-{_PURPOSE_LETTER[purpose]}{seq}-{digest}"
    room = MAX_LEN - len(head) - len(tail)
    base = _base_asset(symbol)[: max(room, 0)]
    cid = head + base + tail
    if len(cid) > MAX_LEN or not ALLOWED.match(cid):  # pragma: no cover - guarded by the layout
        raise ValueError(f"client order id {cid!r} breaks the exchange's rule")
    return cid


def parse_client_id(cid: str) -> ParsedClientId | None:
    """The readable parts of one of our ids, or None for an id we did not make."""
    m = _PARSE.match(cid)
    if m is None:
        return None
    return ParsedClientId(
        instance_tag=m["inst"],
        base=m["base"],
        candle_time_s=int(m["candle"], 36),
        purpose=_LETTER_PURPOSE[m["p"]],
        seq=int(m["seq"]),
    )


def is_ours(cid: str, *, instance: str) -> bool:
    parsed = parse_client_id(cid)
    return parsed is not None and parsed.instance_tag == instance_tag(instance)


def _base_asset(symbol: str) -> str:
    base = symbol.split("/", 1)[0]
    return "".join(c for c in base.upper() if c.isascii() and c.isalnum())[:8]


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(_ALNUM36[r])
    return "".join(reversed(digits))
