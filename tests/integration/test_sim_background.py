"""The sim under concurrent clients, matching on its own thread, and CSV replay."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from support.sim_ccxt import client, market_client, resync, run_workers

from trendbotd.core.clock import ManualClock
from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
H = 3_600_000


def test_concurrent_clients_keep_the_books_consistent() -> None:
    with SimExchange(SimConfig(symbols=(SYMBOL,), start_balance=Decimal(10**6))) as sim:
        sim.account.set_price(SYMBOL, Decimal(30000))

        def trade(worker: int) -> None:
            ex = market_client(sim)
            for i in range(10):
                side = "buy" if i % 2 == 0 else "sell"
                ex.create_order(
                    SYMBOL, "market", side, 0.01, None, {"clientOrderId": f"w{worker}-{i}"}
                )
                ex.fetch_positions([SYMBOL])

        assert run_workers(trade, workers=4, timeout=60) == []
        orders = list(sim.state.orders.values())
        assert len(orders) == 40
        assert len({o.order_id for o in orders}) == 40
        assert sim.account.positions() == []  # 20 buys and 20 sells of 0.01
        fees = Decimal(40) * Decimal("0.01") * Decimal(30000) * Decimal("0.0005")
        assert sim.state.wallet == Decimal(10**6) - fees


def test_background_thread_triggers_stops_without_requests() -> None:
    now = time.time_ns() // 1_000_000
    clock = ManualClock(now - now % H + 1)
    with SimExchange(
        SimConfig(symbols=(SYMBOL,), seed=2, clock=clock, match_interval_s=0.05)
    ) as sim:
        ex = client(sim)
        resync(ex)
        ex.create_order(SYMBOL, "market", "sell", 0.01)
        entry = sim.account.position(SYMBOL).entry_price
        stop = float((entry * Decimal("1.001")).quantize(Decimal("0.1")))
        ex.create_order(
            SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": stop, "reduceOnly": True}
        )
        algo = next(iter(sim.state.algos.values()))
        clock.advance(500 * H)  # move time without touching the HTTP side or the state
        deadline = time.monotonic() + 10
        while algo.status == "NEW" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert algo.status == "FINISHED"
        assert sim.state.orders[algo.actual_order_id or 0].avg_price == Decimal(str(stop))


def test_csv_replay_serves_the_files_candles(tmp_path: Path) -> None:
    path = tmp_path / "btc.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(1200):
        t = 1_500_000_000_000 - 1_500_000_000_000 % H + i * H
        rows.append(f"{t},{1000 + i},{1002 + i},{999 + i},{1001 + i},{5 + i}")
    path.write_text("\n".join(rows) + "\n")
    with SimExchange(SimConfig(symbols=(SYMBOL,), data_csv=path)) as sim:
        ex = client(sim)
        candles = ex.fetch_ohlcv(SYMBOL, "1h", limit=5)
        # replay puts the start 500 bars into the file (at most half of it): row 500 forms
        assert candles[-1][1] == 1500
        assert [c[1] for c in candles[:-1]] == [1496, 1497, 1498, 1499]
        assert [c[4] for c in candles[:-1]] == [1497, 1498, 1499, 1500]
        assert candles[-2][5] == 5 + 499
