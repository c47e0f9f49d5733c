"""Pure accounting of the simulator's request log for bench/bench_compare.py: which
requests belong to which tick, which ticks decide a closed candle, and the close-to-order
latency read from the client order ids alone (no I/O here; see the unit tests).

How a tick is identified: the daemon sends one ``STATUS=`` datagram at the end of every
tick (service/lifecycle.py ``Loop._tick``); the bench records the wall-clock time of each.
Tick k holds the requests the simulator received (its ``at_ms``, the host's clock at speed
1) after the end of tick k-1 and up to the end of tick k. A tick decides a candle when it
is the first tick, after the candle's close plus the engine's grace, whose first request
came at or after that instant: a between-candle tick already under way at the close (its
first request before it) stays a between-candle tick, and the tick that follows it decides.
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


def decision_instants(start_ms: int, end_ms: int, *, timeframe_ms: int, grace_ms: int) -> list[int]:
    """Every candle close plus grace in (start_ms, end_ms]: when the engine wakes to decide."""
    first = (start_ms - grace_ms) // timeframe_ms * timeframe_ms + timeframe_ms + grace_ms
    return list(range(first, end_ms + 1, timeframe_ms))


def tally_ticks(
    ends_ms: Sequence[int], hits: Sequence[Hit], decide_at_ms: Sequence[int]
) -> list[TickTally]:
    """One tally per tick that ended after ``ends_ms[0]`` (the first end only opens the
    count: the tick before it is start-up work). ``ends_ms`` ascending; ``hits`` any order;
    ``decide_at_ms``: the instants at which a closed candle is due (``decision_instants``)."""
    ends = sorted(ends_ms)
    per_tick: list[list[Hit]] = [[] for _ in ends[1:]]
    for hit in sorted(hits, key=lambda h: h.at_ms):
        i = bisect.bisect_left(ends, hit.at_ms)  # first end >= at_ms: the tick it belongs to
        if 1 <= i < len(ends):
            per_tick[i - 1].append(hit)
    deciding = set()
    for due in decide_at_ms:
        for k, tick_hits in enumerate(per_tick):
            if ends[k + 1] > due and tick_hits and tick_hits[0].at_ms >= due:
                deciding.add(k)
                break
    return [
        TickTally(
            DECISION if k in deciding else BETWEEN,
            ends[k + 1],
            dict(Counter(h.endpoint for h in tick_hits)),
        )
        for k, tick_hits in enumerate(per_tick)
    ]


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
