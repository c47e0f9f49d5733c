"""The engine's tick against the real paper stack, stepped candle by candle: what it
asks the exchange before an order leaves, and the operator's reduce-only switch."""

from __future__ import annotations

from pathlib import Path

from paper_replay import HOUR_MS, PaperReplay, replay_config
from support.daemon_harness import wait_until

START_MS = 1_700_000_000_000 // HOUR_MS * HOUR_MS
ORDER = "/fapi/v1/order"


def test_an_entry_from_flat_leaves_after_one_positions_request_and_the_candle(
    tmp_path: Path,
) -> None:
    config = replay_config(tmp_path, data_csv=None, regime="trend", seed=2)
    with PaperReplay(config, first_close_ms=START_MS) as replay:
        replay.tick()
        for _ in range(500):
            replay.sim.clear_requests()
            replay.step()
            paths = [r.path for r in replay.sim.requests]
            if ORDER in paths:
                break
        else:
            raise AssertionError("no entry in 500 trending candles")
    before = [p for p in paths[: paths.index(ORDER)] if p != "/fapi/v1/time"]
    # decide first, re-sync after: no open-orders or algo-orders listing on the way, and
    # flat with nothing changed since the last sync, no balance request either (the
    # balance that sync read is exact: no open profit moves it); the stop goes first
    assert before == ["/fapi/v3/positionRisk", "/fapi/v1/klines", "/fapi/v1/algoOrder"]
    after = paths[paths.index(ORDER) :]
    assert {"/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders"} <= set(after), "then the sync"


def test_the_config_reduce_only_switch_blocks_entries_and_says_so(tmp_path: Path) -> None:
    config = replay_config(
        tmp_path, data_csv=None, regime="trend", seed=2, risk="reduce_only = true"
    )
    with PaperReplay(config, first_close_ms=START_MS) as replay:
        replay.tick()
        for _ in range(300):
            replay.step()
        orders = [r for r in replay.sim.requests if r.path == ORDER]
        statuses = replay.statuses
        journal = replay.runner.journal
        assert journal is not None
        blocks = journal.decisions.guard_decisions(limit=1000)
    assert orders == []
    assert blocks, "entry signals came and were refused"
    assert all(
        not allowed and "reduce" in (guard + reason) for _, _, guard, allowed, reason in blocks
    )
    assert all(s.startswith("reduce_only |") for s in statuses)
    assert "risk.reduce_only in the config" in statuses[-1]


def test_between_candles_the_loop_re_syncs_every_tick_interval(tmp_path: Path) -> None:
    config = replay_config(
        tmp_path, data_csv=None, regime="trend", seed=2, service="tick_interval_s = 0.3"
    )
    with PaperReplay(config, first_close_ms=START_MS) as replay:
        replay.tick()
        book = replay.sim.state.books["BTCUSDT"]
        for _ in range(100):
            if book.amount != 0:
                break
            replay.step()
        assert book.amount != 0, "a position to watch over"
        runner = replay.runner
        # the next candle is an hour of exchange time away; the re-sync is due first
        assert 0.0 < runner.seconds_until_next_tick() <= 0.3
        assert wait_until(lambda: runner.seconds_until_next_tick() == 0.0, timeout=30)
        replay.sim.clear_requests()
        status = replay.tick()  # between candles: sync only, no candle request
        paths = sorted(r.path for r in replay.sim.requests)
        # four listings; the live stop is found in the algo listing, not asked for by id
        assert paths == [
            "/fapi/v1/openAlgoOrders",
            "/fapi/v1/openOrders",
            "/fapi/v3/account",
            "/fapi/v3/positionRisk",
        ]
        assert status.startswith("normal |") and " stop " in status
        assert 0.0 < runner.seconds_until_next_tick() <= 0.3
