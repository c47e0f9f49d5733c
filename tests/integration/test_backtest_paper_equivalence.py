"""The backtest and the paper-trading daemon take the same trades on the same candles.

One CSV file feeds both: ``trendbotd backtest``'s loader and engine on one side; on the
other the daemon's own trading stack in paper mode (TradingRunner: SQLite journal, the
simulated exchange replaying the CSV on 127.0.0.1, real ccxt over HTTP, order executor,
engine), stepped one candle close at a time on a ManualClock. The daemon's trades are
read from the exchange's fills, so what is compared is what the exchange executed.
Both start deciding at the same candle; the backtest sees the earlier bars as warm-up,
the daemon fetches them as history.

Also here: the daemon on the simulator's generated trending series opens and closes
positions, each with a stop on the exchange; on a ranging series it trades rarely.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from paper_replay import (
    HOUR_MS,
    SYMBOL,
    PaperReplay,
    RoundTrip,
    candles_needed,
    replay_config,
    round_trips,
    write_generated_csv,
)

from trendbotd.backtest.csvdata import load_csv
from trendbotd.backtest.engine import BacktestResult, BacktestSettings, run_backtest
from trendbotd.config import Config
from trendbotd.core.domain import Market
from trendbotd.core.strategy import Direction
from trendbotd.sim.orders import SimAlgoOrder
from trendbotd.sim.state import Fill

START_MS = 1_700_000_000_000 // HOUR_MS * HOUR_MS


def replay_csv(config: Config, *, bars: int) -> tuple[list[Fill], Decimal, Market, int, int]:
    """Run the daemon's stack over the configured CSV: one tick per closed candle from
    the first with full history to the last. Returns the exchange's fills and wallet,
    the market rules the daemon loaded, the first decided candle and the tick count."""
    history = candles_needed(config)
    first_open = START_MS + history * HOUR_MS
    with PaperReplay(config, first_close_ms=first_open + HOUR_MS) as replay:
        replay.tick()
        for _ in range(bars - history - 1):  # up to the close of the last candle
            replay.step()
        assert not any("stale" in s or "unavailable" in s for s in replay.statuses)
        return (
            list(replay.sim.state.fills),
            replay.sim.state.wallet,
            replay.runner.market(SYMBOL),
            first_open,
            replay.ticks,
        )


def backtest_csv(path: Path, config: Config, market: Market, first_open: int) -> BacktestResult:
    data = load_csv(path)
    settings = BacktestSettings(
        market=market,  # the exchange's own rules, so both round sizes and stops alike
        start_equity=config.paper.start_balance,
        risk_per_trade=config.risk.risk_per_trade,
        max_leverage=config.trading.leverage,
        max_notional=config.risk.max_notional,
        first_decision_ms=first_open,
    )
    return run_backtest(data.candles, config.strategy_for(SYMBOL), settings)


def assert_same_trades(live: list[RoundTrip], result: BacktestResult, wallet: Decimal) -> None:
    trades = result.trades
    assert len(live) == len(trades)
    for i, (trip, trade) in enumerate(zip(live, trades, strict=True)):
        expected = (
            trade.direction,
            trade.amount,
            trade.entry_ms,
            trade.entry_price,
            trade.exit_ms,
            trade.exit_price,
        )
        if trade.exit_reason == "end of data":  # the backtest closes it; the daemon holds
            expected = (*expected[:4], None, None)
        assert trip.same_trade() == expected, f"trade {i}: {trip} vs {trade}"
    # money too: every fee and every realised profit, to the last decimal
    open_entry_fee = Decimal(0)
    closed = trades
    if trades and trades[-1].exit_reason == "end of data":
        last = trades[-1]
        open_entry_fee = last.amount * last.entry_price * result.settings.fee_rate
        closed = trades[:-1]
    expected_wallet = result.settings.start_equity + sum(t.pnl for t in closed) - open_entry_fee
    assert wallet == expected_wallet


@dataclass(frozen=True, slots=True)
class BothRuns:
    live: list[RoundTrip]  # the daemon's positions, from the exchange's fills
    backtest: BacktestResult
    wallet: Decimal  # the exchange's wallet balance at the end
    ticks: int  # candles the daemon decided


def paper_and_backtest(tmp_path: Path, *, strategy: str, decided: int) -> BothRuns:
    """One generated CSV, ``decided`` candles after the strategy's history, through the
    daemon's paper stack and through the backtest; both must decide the same candles."""
    config = replay_config(tmp_path, data_csv=tmp_path / "candles.csv", strategy=strategy)
    bars = candles_needed(config) + decided
    assert config.paper.data_csv is not None
    write_generated_csv(
        config.paper.data_csv, bars=bars, regime="mixed", seed=5, start_ms=START_MS,
        tick=Decimal("0.1"),
    )  # fmt: skip
    fills, wallet, market, first_open, ticks = replay_csv(config, bars=bars)
    result = backtest_csv(config.paper.data_csv, config, market, first_open)
    assert result.decisions == ticks, "both decided the same candles"
    return BothRuns(round_trips(fills), result, wallet, ticks)


def test_ema_cross_paper_equals_backtest_on_2000_candles(tmp_path: Path) -> None:
    both = paper_and_backtest(tmp_path, strategy='kind = "ema_cross"', decided=2_050)
    assert both.ticks >= 2_000, "the daemon decided at least 2,000 candles"
    assert len(both.live) >= 15, "enough trades to compare"
    assert {t.direction for t in both.live} == {Direction.LONG, Direction.SHORT}
    assert any(t.exit_reason == "stop" for t in both.backtest.trades)
    assert_same_trades(both.live, both.backtest, both.wallet)


@pytest.mark.parametrize(
    ("strategy", "exit_reason"),
    [
        # donchian, trail out of the way: positions end by the exit channel, i.e. by a
        # market order the engine sends at the next open, not by a stop on the exchange
        ('kind = "donchian"\ntrail_mult = 50', "exit signal"),
        # ema_cross with wide stops: an opposite cross closes and re-enters the other way
        ('kind = "ema_cross"\ntrail_mult = 50\natr_stop_mult = 8', "reverse"),
    ],
    ids=["donchian-exit-channel", "ema-cross-reversals"],
)
def test_market_exits_and_reversals_paper_equals_backtest(
    tmp_path: Path, strategy: str, exit_reason: str
) -> None:
    # No trend filter here: more trades to compare (the test above runs with it).
    both = paper_and_backtest(tmp_path, strategy=strategy + "\nmin_efficiency = 0", decided=900)
    assert sum(t.exit_reason == exit_reason for t in both.backtest.trades) >= 5
    assert_same_trades(both.live, both.backtest, both.wallet)


def run_generated(tmp_path: Path, *, regime: str, seed: int, candles: int) -> PaperReplay:
    config = replay_config(tmp_path, data_csv=None, regime=regime, seed=seed)
    replay = PaperReplay(config, first_close_ms=START_MS)
    with replay:
        replay.tick()
        for _ in range(candles - 1):
            replay.step()
    return replay


def stops_of(trip: RoundTrip, algos: list[SimAlgoOrder]) -> list[SimAlgoOrder]:
    """Protective stops placed for ``trip``: opposite side, reduce-only, right after entry."""
    close_side = "SELL" if trip.direction is Direction.LONG else "BUY"
    return [
        a
        for a in algos
        if a.side == close_side
        and a.order_type == "STOP_MARKET"
        and (a.reduce_only or a.close_position)
        and trip.entry_at_ms <= a.created_ms <= trip.entry_at_ms + 60_000
    ]


@pytest.mark.parametrize("seed", [2])
def test_paper_trades_a_trend_with_exchange_stops_and_a_range_rarely(
    tmp_path: Path, seed: int
) -> None:
    candles = 1_000
    trend = run_generated(tmp_path / "trend", regime="trend", seed=seed, candles=candles)
    state = trend.sim.state
    trips = round_trips(list(state.fills))
    algos = list(state.algos.values())
    closed = [t for t in trips if t.exit_order_id is not None]
    assert len(closed) >= 5, f"a trend is traded: {len(trips)} positions in {candles} candles"
    for trip in trips:
        assert stops_of(trip, algos), f"no stop on the exchange after the entry {trip}"
    triggered = {a.actual_order_id for a in algos if a.status == "FINISHED"}
    by_stop = [t for t in closed if t.exit_order_id in triggered]
    assert len(by_stop) >= len(closed) // 2, "trend trades end on their (trailing) stops"
    assert any(a.status == "CANCELED" for a in algos), "trailing stops were moved"

    ranging = run_generated(tmp_path / "range", regime="range", seed=seed, candles=candles)
    range_trips = round_trips(list(ranging.sim.state.fills))
    print(f"positions per {candles} candles: trend {len(trips)}, range {len(range_trips)}")
    assert len(range_trips) <= max(1, len(trips) // 3), "a range is traded rarely"
    assert len(range_trips) <= 5
