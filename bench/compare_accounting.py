"""Pure accounting of the simulator's request log for bench/bench_compare.py: which
requests belong to which tick, which ticks decide a closed candle, and the close-to-order
latency read from the client order ids alone (no I/O here; see the unit tests).

How a tick is identified: the daemon sends one ``STATUS=`` datagram at the end of every
tick (service/lifecycle.py ``Loop._tick``); the bench records the wall-clock time of each.
Tick k holds the requests the simulator received (its ``at_ms``, the host's clock at speed
1) after the end of tick k-1 and up to the end of tick k.

Which tick decides a candle: the engine decides a closed candle at the first tick that
starts after its close (it schedules a wake at close + grace, but a between-candle re-sync
that comes earlier decides it already). So the deciding tick is the first one whose first
request came at or after the close and that fetched candles (GET /fapi/v1/klines); if no
tick until the next close fetched any, the first one that started after the close. A tick
under way at the close (first request before it) is a between-candle tick. Re-sync ticks
run on the monotonic clock, not on the candle schedule, so one starting within the few
milliseconds by which the daemon's reading of the exchange's clock may be off is rare.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from trendbotd.core.client_ids import parse_client_id

DECISION = "decision"
BETWEEN = "between-candle"
# Order requests and the parameter that carries the client order id.
CANDLE_PATH = "/fapi/v1/klines"
ORDER_PATHS = {"/fapi/v1/order": "newClientOrderId", "/fapi/v1/algoOrder": "clientAlgoId"}


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the simulator received."""

    method: str
    path: str
    at_ms: int  # simulator time of receipt
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class TickTally:
    kind: str  # DECISION or BETWEEN
    ended_ms: int
    started_ms: int | None  # its first request; None: it made none
    endpoints: Mapping[str, int]  # "GET /fapi/v2/positionRisk" -> requests in this tick

    @property
    def total(self) -> int:
        return sum(self.endpoints.values())


def hits_from_log(entries: Iterable[object]) -> list[Hit]:
    """The simulator's ``/sim/requests`` entries, without its own control paths."""
    hits: list[Hit] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise TypeError(f"request log entry is not an object: {entry!r}")
        path = str(entry["path"])
        if path.startswith("/sim/"):
            continue
        params = entry.get("params") or {}
        hits.append(Hit(str(entry["method"]), path, int(entry["at_ms"]), dict(params)))
    return sorted(hits, key=lambda h: h.at_ms)


def candle_closes(start_ms: int, end_ms: int, *, timeframe_ms: int) -> list[int]:
    """Every candle close in (start_ms, end_ms]."""
    first = start_ms // timeframe_ms * timeframe_ms + timeframe_ms
    return list(range(first, end_ms + 1, timeframe_ms))


def tally_ticks(
    ends_ms: Sequence[int], hits: Sequence[Hit], closes_ms: Sequence[int]
) -> list[TickTally]:
    """One tally per tick that ended after ``ends_ms[0]`` (the first end only opens the
    count: the tick before it is start-up work). ``closes_ms``: the candle closes
    (``candle_closes``)."""
    ends = sorted(ends_ms)
    per_tick: list[list[Hit]] = [[] for _ in ends[1:]]
    for hit in sorted(hits, key=lambda h: h.at_ms):
        i = bisect.bisect_left(ends, hit.at_ms)  # first end >= at_ms: the tick it belongs to
        if 1 <= i < len(ends):
            per_tick[i - 1].append(hit)
    closes = sorted(closes_ms)
    deciding = {
        k
        for i, close in enumerate(closes)
        if (k := _deciding_tick(per_tick, close, closes[i + 1] if i + 1 < len(closes) else None))
        is not None
    }
    return [
        TickTally(
            DECISION if k in deciding else BETWEEN,
            ends[k + 1],
            tick_hits[0].at_ms if tick_hits else None,
            dict(Counter(h.endpoint for h in tick_hits)),
        )
        for k, tick_hits in enumerate(per_tick)
    ]


def _deciding_tick(
    per_tick: Sequence[Sequence[Hit]], close: int, following: int | None
) -> int | None:
    started = [
        k
        for k, tick_hits in enumerate(per_tick)
        if tick_hits
        and tick_hits[0].at_ms >= close
        and (following is None or tick_hits[0].at_ms < following)
    ]
    for k in started:
        if any(h.path == CANDLE_PATH for h in per_tick[k]):
            return k
    return started[0] if started else None


def endpoint_medians(tallies: Sequence[TickTally]) -> dict[str, float]:
    """Median count of each endpoint over the ticks (0 where a tick did not call it)."""
    names = sorted({name for t in tallies for name in t.endpoints})
    result: dict[str, float] = {}
    for name in names:
        counts = sorted(t.endpoints.get(name, 0) for t in tallies)
        mid = len(counts) // 2
        result[name] = (
            float(counts[mid]) if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2.0
        )
    return result


def order_latencies_ms(
    hits: Sequence[Hit], *, ready_ms: int, timeframe_ms: int, grace_ms: int, speed: float
) -> list[float]:
    """Real milliseconds from each acting decision's scheduled wake (close + grace) to its
    first order request reaching the simulator, with the candle read from the client order
    id (it encodes the candle's open time). One sample per (symbol, candle) that closed
    after READY; simulator milliseconds divided by ``speed``."""
    first: dict[tuple[str, int], int] = {}
    for hit in sorted(hits, key=lambda h: h.at_ms):
        key = ORDER_PATHS.get(hit.path)
        if hit.method != "POST" or key is None:
            continue
        parsed = parse_client_id(hit.params.get(key, ""))
        if parsed is None:
            continue
        candle_ms = parsed.candle_time_s * 1000
        if candle_ms + timeframe_ms <= ready_ms:
            continue
        first.setdefault((parsed.base, candle_ms), hit.at_ms)
    return [
        (at - (candle_ms + timeframe_ms + grace_ms)) / speed for (_, candle_ms), at in first.items()
    ]
