"""Test helper: the daemon's real trading stack in paper mode, stepped candle by candle.

``PaperReplay`` builds the same ``TradingRunner`` that ``trendbotd run --paper`` builds
(journal in a real SQLite file, the simulated exchange on 127.0.0.1, real ccxt over HTTP,
position manager, engine) but hands it a ManualClock, so a test can run thousands of
candles in seconds: each ``step()`` moves the clock to the next candle close plus the
engine's grace and runs one tick, exactly as the lifecycle loop would after sleeping.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from support.startup_steps import RecordedProgress

from trendbotd.alerts.sink import AlertSink
from trendbotd.config import Config, load_config
from trendbotd.core.clock import ManualClock
from trendbotd.core.strategy import Direction, required_history
from trendbotd.service.notify import NullNotifier
from trendbotd.sim import SimExchange
from trendbotd.sim.market import GeneratedCandles
from trendbotd.sim.state import Fill
from trendbotd.trading.compose.root import trading_runner
from trendbotd.trading.engine import CANDLE_GRACE_MS

HOUR_MS = 3_600_000
SYMBOL = "BTC/USDT:USDT"


def write_generated_csv(
    path: Path, *, bars: int, regime: str, seed: int, start_ms: int, tick: Decimal
) -> None:
    """``bars`` hourly candles of the simulator's generator as a backtest CSV, prices on
    the exchange's tick and each open equal to the previous close (no gaps: a gap fills a
    stop at the open, which the path-following simulator and the bar-level backtest price
    alike only when the open is exactly on the tick)."""
    source = GeneratedCandles(
        seed=seed, symbol="BTC", regime=regime, timeframe_ms=HOUR_MS, base_price=30000.0
    )
    first = start_ms // HOUR_MS

    def on_tick(x: float) -> Decimal:
        return (Decimal(repr(x)) / tick).quantize(Decimal(1)) * tick

    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        prev_close: Decimal | None = None
        for i in range(bars):
            bar = source.bar(first + i)
            o = prev_close if prev_close is not None else on_tick(bar.open)
            c = on_tick(bar.close)
            hi = max(on_tick(bar.high), o, c)
            lo = min(on_tick(bar.low), o, c)
            out.writerow([(first + i) * HOUR_MS, o, hi, lo, c, f"{bar.volume:.3f}"])
            prev_close = c


def replay_config(
    tmp: Path,
    *,
    data_csv: Path | None,
    regime: str = "mixed",
    seed: int = 1,
    strategy: str = 'kind = "ema_cross"',
    risk: str = "",
    service: str = "",
    extra: str = "",
) -> Config:
    """``extra``: more tables at the end (``[alerts]``, say)."""
    paper = f'data_csv = "{data_csv}"' if data_csv else f'regime = "{regime}"\nseed = {seed}'
    if "daily_loss_limit" not in risk:
        # The backtest models sizing, not the account-level guards: keep the daily loss
        # switch out of the way so both see the same entries.
        risk = f"daily_loss_limit = 1.0\n{risk}"
    text = f"""
[instance]
name = "replay"
runtime_dir = "{tmp}/run"
state_dir = "{tmp}/lib"

[exchange]
paper = true

[paper]
speed = 1
{paper}

[trading]
symbols = ["{SYMBOL}"]
timeframe = "1h"
leverage = 3

[strategy]
{strategy}

[risk]
{risk}

[service]
{service}

{extra}
"""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "replay.toml"
    path.write_text(text)
    return load_config(path)


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One position from the fill that opened it to the fill that closed it."""

    direction: Direction
    amount: Decimal
    entry_bar_ms: int
    entry_price: Decimal
    exit_bar_ms: int | None  # None: still open
    exit_price: Decimal | None
    entry_at_ms: int  # exchange time of the entry fill
    exit_order_id: int | None  # the exchange order that closed it (a triggered stop's too)

    def same_trade(self) -> tuple[object, ...]:
        """What a backtest trade must equal: side, size, and both fills' bar and price."""
        return (
            self.direction,
            self.amount,
            self.entry_bar_ms,
            self.entry_price,
            self.exit_bar_ms,
            self.exit_price,
        )


def round_trips(fills: list[Fill], *, symbol_id: str = "BTCUSDT") -> list[RoundTrip]:
    """Pair the exchange's fills into positions (one-way mode, no partial closes here)."""
    trips: list[RoundTrip] = []
    amount = Decimal(0)
    opened: Fill | None = None
    for f in fills:
        if f.symbol != symbol_id:
            continue
        signed = f.qty if f.side == "BUY" else -f.qty
        if amount == 0:
            opened = f
        amount += signed
        if amount == 0 and opened is not None:
            trips.append(_trip(opened, f))
            opened = None
        elif opened is not None and f is not opened and (amount > 0) != (signed > 0):
            raise AssertionError(f"a fill reversed the position in one order: {f}")
    if opened is not None:
        trips.append(_trip(opened, None))
    return trips


def _trip(opened: Fill, closed: Fill | None) -> RoundTrip:
    return RoundTrip(
        direction=Direction.LONG if opened.side == "BUY" else Direction.SHORT,
        amount=opened.qty,
        entry_bar_ms=opened.at_ms // HOUR_MS * HOUR_MS,
        entry_price=opened.price,
        exit_bar_ms=None if closed is None else closed.at_ms // HOUR_MS * HOUR_MS,
        exit_price=None if closed is None else closed.price,
        entry_at_ms=opened.at_ms,
        exit_order_id=None if closed is None else closed.order_id,
    )


class PaperReplay:
    """The trading runner on a ManualClock that starts just after the close of the
    candle opening at ``first_close_ms - 1h`` (the first candle the engine decides)."""

    def __init__(
        self, config: Config, *, first_close_ms: int, alerts: AlertSink | None = None
    ) -> None:
        self.clock = ManualClock(first_close_ms + CANDLE_GRACE_MS)
        self.runner, self._assembly = trading_runner(
            config, notifier=NullNotifier(), paper_clock=self.clock, alerts=alerts
        )
        self.ticks = 0
        self.statuses: list[str] = []

    def __enter__(self) -> PaperReplay:
        self.runner.start(RecordedProgress())
        # The simulator counts request weight per real minute, as Binance does; a replay
        # packs days of exchange time into one, so the budget would stop it, not the bot.
        self.sim.limiter.limit = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()

    @property
    def sim(self) -> SimExchange:
        sim = self._assembly.sim
        assert sim is not None
        return sim

    def tick(self) -> str:
        status = self.runner.tick()
        self.ticks += 1
        self.statuses.append(status)
        return status

    def step(self) -> str:
        """Move to the next candle close (plus grace) and tick there."""
        now = self.clock.now_ms()
        target = (now // HOUR_MS + 1) * HOUR_MS + CANDLE_GRACE_MS
        self.clock.advance(target - now)
        return self.tick()


def candles_needed(config: Config) -> int:
    return required_history(config.strategy_for(SYMBOL))
