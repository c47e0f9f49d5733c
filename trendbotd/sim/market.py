"""Price data of the simulated exchange: deterministic generated candles or a CSV replay.

A ``Tape`` turns base candles into a continuous price path. Inside a bar the price stays
at the open for the first quarter, then moves linearly open -> first extreme -> second
extreme -> close (low first on an up bar, high first on a down bar). Fills and triggers
follow that path, so an order placed right after a bar closes fills at the next open.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import random
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

TIMEFRAMES_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance weeks open on Monday; 1970-01-01 was a Thursday
ANCHOR_MS = 1_577_836_800_000  # 2020-01-01T00:00Z: segment 0 of every generated series
SEGMENT_BARS = 240  # bars per regime segment (10 days of 1h bars)
BASE_PRICES = {"BTC": 30000.0, "ETH": 2000.0, "BNB": 300.0, "SOL": 100.0}
Regime = str  # "trend" | "range" | "mixed"
REGIMES = ("trend", "range", "mixed")


def interval_offset_ms(interval_ms: int) -> int:
    return _WEEK_OFFSET_MS if interval_ms == TIMEFRAMES_MS["1w"] else 0


def align(t_ms: int, interval_ms: int) -> int:
    """Open time of the ``interval_ms`` bar containing ``t_ms``."""
    off = interval_offset_ms(interval_ms)
    return (t_ms - off) // interval_ms * interval_ms + off


@dataclass(frozen=True, slots=True)
class Bar:
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleSource(Protocol):
    @property
    def timeframe_ms(self) -> int: ...

    def bar(self, index: int) -> Bar:
        """The bar opening at ``index * timeframe_ms`` (plus the week offset for 1w)."""
        ...


def _unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from its inputs."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return float(struct.unpack(">Q", digest)[0]) / 2.0**64


class GeneratedCandles:
    """Seeded synthetic candles for all time, evaluated lazily segment by segment.

    The log price is a per-segment drift (trend segments) plus a Brownian bridge that is
    zero at both segment ends, so the level at any segment boundary depends only on the
    drifts before it, and ``bar(i)`` never needs the bars between the anchor and ``i``.
    """

    def __init__(
        self, *, seed: int, symbol: str, regime: Regime, timeframe_ms: int, base_price: float
    ) -> None:
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, not {regime!r}")
        self._seed = seed
        self._symbol = symbol
        self._regime = regime
        self._tf = timeframe_ms
        self._base = math.log(base_price)
        hours = timeframe_ms / 3_600_000
        self._sigma = min(0.007 * math.sqrt(hours), 0.08)
        self._drift = min(0.0012 * hours, 0.03)
        self._anchor_index = align(ANCHOR_MS, timeframe_ms) // timeframe_ms
        # level (log, relative to base) at the start of segment s: forward and backward
        self._fwd: list[tuple[float, int]] = [(0.0, self._initial_direction())]
        self._bwd: list[tuple[float, int]] = [(0.0, self._initial_direction())]
        self._segments: OrderedDict[int, list[Bar]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def timeframe_ms(self) -> int:
        return self._tf

    def _u(self, *parts: object) -> float:
        return _unit(self._seed, self._symbol, *parts)

    def _initial_direction(self) -> int:
        return 1 if self._u("dir0") < 0.5 else -1

    def _is_trend(self, seg: int) -> bool:
        if self._regime == "trend":
            return True
        if self._regime == "range":
            return False
        return self._u(seg, "kind") < 0.5

    def _next_direction(self, seg: int, level: float, direction: int) -> int:
        if level > 1.2:
            return -1
        if level < -1.2:
            return 1
        return -direction if self._u(seg, "flip") < 0.3 else direction

    def _segment_drift(self, seg: int, direction: int) -> float:
        if not self._is_trend(seg):
            return 0.0
        return direction * self._drift * (0.6 + 0.8 * self._u(seg, "mag"))

    def _segment_start(self, seg: int) -> tuple[float, int]:
        """(level, direction) at the start of segment ``seg``."""
        if seg >= 0:
            while len(self._fwd) <= seg:
                s = len(self._fwd) - 1
                level, direction = self._fwd[s]
                end = level + self._segment_drift(s, direction) * SEGMENT_BARS
                self._fwd.append((end, self._next_direction(s + 1, end, direction)))
            return self._fwd[seg]
        while len(self._bwd) <= -seg:
            s = -len(self._bwd)  # the segment being computed, walking back in time
            end = self._bwd[-1][0]
            if end > 1.2:
                direction = 1
            elif end < -1.2:
                direction = -1
            else:
                direction = 1 if self._u(s, "dir") < 0.5 else -1
            self._bwd.append((end - self._segment_drift(s, direction) * SEGMENT_BARS, direction))
        return self._bwd[-seg]

    def _build_segment(self, seg: int) -> list[Bar]:
        level, direction = self._segment_start(seg)
        drift = self._segment_drift(seg, direction)
        rng = random.Random(f"{self._seed}|{self._symbol}|seg|{seg}")
        walk = [0.0]
        for _ in range(SEGMENT_BARS):
            walk.append(walk[-1] + rng.gauss(0.0, self._sigma))
        total = walk[-1]
        logs = [
            self._base + level + drift * k + walk[k] - total * k / SEGMENT_BARS
            for k in range(SEGMENT_BARS + 1)
        ]
        bars = []
        for k in range(SEGMENT_BARS):
            o, c = math.exp(logs[k]), math.exp(logs[k + 1])
            up = abs(rng.gauss(0.0, self._sigma * 0.5))
            down = abs(rng.gauss(0.0, self._sigma * 0.5))
            vol = 100.0 * math.exp(rng.gauss(0.0, 0.4))
            bars.append(Bar(o, max(o, c) * math.exp(up), min(o, c) * math.exp(-down), c, vol))
        return bars

    def bar(self, index: int) -> Bar:
        seg, k = divmod(index - self._anchor_index, SEGMENT_BARS)
        with self._lock:  # the caches grow lazily; request threads share them
            bars = self._segments.get(seg)
            if bars is None:
                bars = self._build_segment(seg)
                self._segments[seg] = bars
                if len(self._segments) > 64:
                    self._segments.popitem(last=False)
            else:
                self._segments.move_to_end(seg)
            return bars[k]


class CsvCandles:
    """Real candles from a CSV file (timestamp,open,high,low,close,volume; header optional).

    Timestamps may be seconds, milliseconds or ISO dates. ``shift_ms`` moves the whole
    series in time (replay). Missing bars inside the range and all time outside it are
    flat bars at the neighbouring close with zero volume.
    """

    def __init__(self, path: Path, *, timeframe_ms: int | None = None) -> None:
        rows = _read_csv(path)
        if len(rows) < 2:
            raise ValueError(f"{path}: need at least two candles")
        spacing = sorted(b[0] - a[0] for a, b in itertools.pairwise(rows))
        tf = timeframe_ms or spacing[len(spacing) // 2]
        if tf <= 0:
            raise ValueError(f"{path}: timestamps must increase")
        self._tf = tf
        self._bars: dict[int, Bar] = {}
        for ts, bar in rows:
            self._bars[align(ts, tf) // tf] = bar
        self.first_index = min(self._bars)
        self.last_index = max(self._bars)
        self.shift_bars = 0

    @property
    def timeframe_ms(self) -> int:
        return self._tf

    @property
    def first_open_ms(self) -> int:
        return (self.first_index + self.shift_bars) * self._tf

    @property
    def last_open_ms(self) -> int:
        return (self.last_index + self.shift_bars) * self._tf

    def bar(self, index: int) -> Bar:
        i = index - self.shift_bars
        if i < self.first_index:
            first = self._bars[self.first_index]
            return Bar(first.open, first.open, first.open, first.open, 0.0)
        i = min(i, self.last_index + 1)
        found = self._bars.get(i)
        if found is not None:
            return found
        j = i - 1
        while j not in self._bars:
            j -= 1
        c = self._bars[j].close
        return Bar(c, c, c, c, 0.0)

    def replay_from(self, start_ms: int, *, warmup_bars: int = 500) -> None:
        """Shift the series so that ``start_ms`` falls ``warmup_bars`` into the data."""
        length = self.last_index - self.first_index + 1
        target = self.first_index + min(warmup_bars, length // 2)
        self.shift_bars = align(start_ms, self._tf) // self._tf - target


def _parse_time(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return int(value * 1000) if value < 1e11 else int(value)


def _read_csv(path: Path) -> list[tuple[int, Bar]]:
    with path.open(newline="") as fh:
        lines = [row for row in csv.reader(fh) if row and not row[0].startswith("#")]
    if not lines:
        return []
    cols = [0, 1, 2, 3, 4, 5]
    header = [c.strip().lower() for c in lines[0]]
    try:
        float(header[1])
    except (ValueError, IndexError):
        lines = lines[1:]
        names: tuple[tuple[str, ...], ...] = (
            ("timestamp", "time", "date", "open_time", "unix"),
            ("open",),
            ("high",),
            ("low",),
            ("close",),
            ("volume", "volume btc", "vol"),
        )
        for k, options in enumerate(names):
            for i, h in enumerate(header):
                if h in options or (k == 0 and h.startswith(("time", "date", "unix"))):
                    cols[k] = i
                    break
    rows = []
    for line in lines:
        ts = _parse_time(line[cols[0]])
        o, hi, lo, c = (float(line[cols[k]]) for k in (1, 2, 3, 4))
        v = float(line[cols[5]]) if len(line) > cols[5] and line[cols[5]] else 0.0
        rows.append((ts, Bar(o, max(hi, o, c), min(lo, o, c), c, v)))
    rows.sort(key=lambda r: r[0])
    return rows


@dataclass(frozen=True, slots=True)
class Piece:
    """A linear stretch of the price path from (t0, p0) to (t1, p1); t1 is exclusive."""

    t0: int
    p0: float
    t1: int
    p1: float

    def at(self, t: int) -> float:
        if self.t1 <= self.t0:
            return self.p1
        return self.p0 + (self.p1 - self.p0) * (t - self.t0) / (self.t1 - self.t0)


class Tape:
    """The continuous price path of one symbol and candles of any interval derived from it."""

    def __init__(self, source: CandleSource) -> None:
        self.source = source
        self.tf = source.timeframe_ms
        self._off = interval_offset_ms(self.tf)

    def _index(self, t: int) -> int:
        return (t - self._off) // self.tf

    def _open_of(self, index: int) -> int:
        return index * self.tf + self._off

    def bar_pieces(self, index: int) -> list[Piece]:
        b = self.source.bar(index)
        t = self._open_of(index)
        q = self.tf // 4
        first, second = (b.low, b.high) if b.close >= b.open else (b.high, b.low)
        return [
            Piece(t, b.open, t + q, b.open),
            Piece(t + q, b.open, t + 2 * q, first),
            Piece(t + 2 * q, first, t + 3 * q, second),
            Piece(t + 3 * q, second, t + self.tf, b.close),
        ]

    def price_at(self, t: int) -> float:
        for piece in self.bar_pieces(self._index(t)):
            if t < piece.t1:
                return piece.at(t)
        return self.source.bar(self._index(t)).close

    def pieces(self, t0: int, t1: int) -> Iterator[Piece]:
        """The path between t0 and t1, clipped to that interval, in time order."""
        index = self._index(t0)
        while self._open_of(index) <= t1:
            for p in self.bar_pieces(index):
                if p.t1 <= t0 or p.t0 > t1:
                    continue
                a, b = max(p.t0, t0), min(p.t1, t1)
                yield Piece(a, p.at(a), b, p.at(b) if b < p.t1 else p.p1)
            index += 1

    def window(self, start: int, end: int, now: int) -> Bar:
        """OHLCV of [start, end) as seen at ``now`` (a still-forming window stops at now)."""
        stop = min(end, now)
        i0, i1 = self._index(start), self._index(end - 1)
        if start == self._open_of(i0) and end == self._open_of(i1) + self.tf and stop == end:
            bars = [self.source.bar(i) for i in range(i0, i1 + 1)]
            return Bar(
                bars[0].open,
                max(b.high for b in bars),
                min(b.low for b in bars),
                bars[-1].close,
                sum(b.volume for b in bars),
            )
        o = self.price_at(start)
        hi = lo = o
        close = o
        for p in self.pieces(start, stop):
            hi, lo = max(hi, p.p0, p.p1), min(lo, p.p0, p.p1)
            close = p.p1
        volume = 0.0
        for i in range(i0, i1 + 1):
            t = self._open_of(i)
            covered = max(0, min(t + self.tf, stop) - max(t, start))
            volume += self.source.bar(i).volume * covered / self.tf
        return Bar(o, hi, lo, close, volume)
