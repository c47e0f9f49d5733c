"""The pure accounting of the before/after benchmark (bench/compare_accounting.py): which
requests belong to which tick, which tick decides a candle, close-to-order latency."""

from __future__ import annotations

import pytest

from bench.compare_accounting import (
    BETWEEN,
    DECISION,
    Hit,
    candle_closes,
    endpoint_medians,
    hits_from_log,
    order_latencies_ms,
    tally_ticks,
)
from trendbotd.core.client_ids import make_client_id
from trendbotd.core.records import Purpose

MINUTE = 60_000
SYNC = ("GET /fapi/v3/account", "GET /fapi/v1/openOrders", "GET /fapi/v3/positionRisk")


def _tick(start_ms: int, *, candles: int = 0) -> list[Hit]:
    """The requests of one tick: a re-sync, plus ``candles`` klines fetches."""
    names = [*SYNC, *["GET /fapi/v1/klines"] * candles]
    return [
        Hit(name.split(" ")[0], name.split(" ")[1], start_ms + 10 * i)
        for i, name in enumerate(names)
    ]


def test_candle_closes_in_the_window() -> None:
    assert candle_closes(MINUTE + 1, 3 * MINUTE, timeframe_ms=MINUTE) == [2 * MINUTE, 3 * MINUTE]
    assert candle_closes(MINUTE, MINUTE + 5, timeframe_ms=MINUTE) == []  # the start is excluded


def test_requests_go_to_the_tick_whose_end_follows_them() -> None:
    ends = [1_000, 3_000, 5_000]
    hits = [*_tick(500), *_tick(2_000), *_tick(4_000)]  # the first tick is start-up work
    tallies = tally_ticks(ends, hits, [])
    assert [t.ended_ms for t in tallies] == [3_000, 5_000]
    assert [t.total for t in tallies] == [3, 3]
    assert [t.started_ms for t in tallies] == [2_000, 4_000]
    assert all(t.kind == BETWEEN for t in tallies)
    assert tallies[0].endpoints == {name: 1 for name in SYNC}


def test_a_tick_without_requests_counts_as_zero() -> None:
    tallies = tally_ticks([1_000, 3_000, 5_000], _tick(4_000), [])
    assert [(t.total, t.started_ms) for t in tallies] == [(0, None), (3, 4_000)]


def test_the_first_tick_after_the_close_that_fetches_candles_decides() -> None:
    close = MINUTE
    ends = [close - 3_800, close - 1_900, close + 400, close + 1_700, close + 2_300]
    hits = [
        *_tick(close - 2_000),  # under way at the close: a between-candle tick
        *_tick(close + 300),  # a re-sync after the close that does not decide
        *_tick(close + 1_500, candles=10),  # the wake at close + grace decides
        *_tick(close + 2_100),
    ]
    tallies = tally_ticks(ends, [*_tick(close - 3_900), *hits], [close])
    assert [t.kind for t in tallies] == [BETWEEN, BETWEEN, DECISION, BETWEEN]
    assert tallies[2].total == 13


def test_a_re_sync_just_after_the_close_can_decide() -> None:
    close = MINUTE
    ends = [close - 1_000, close + 400, close + 2_400]
    hits = [*_tick(close + 100, candles=10), *_tick(close + 2_100)]
    tallies = tally_ticks(ends, hits, [close])
    assert [t.kind for t in tallies] == [DECISION, BETWEEN]


def test_without_any_candle_fetch_the_first_tick_after_the_close_decides() -> None:
    close = MINUTE
    ends = [close - 1_000, close - 500, close + 600, close + 2_600]
    hits = [*_tick(close - 700), *_tick(close + 100), *_tick(close + 2_100)]
    assert [t.kind for t in tally_ticks(ends, hits, [close])] == [BETWEEN, DECISION, BETWEEN]


def test_one_decision_per_close() -> None:
    ends = [0, 1_000, MINUTE + 1_000, MINUTE + 3_000, 2 * MINUTE + 1_000, 2 * MINUTE + 3_000]
    hits = [
        *_tick(MINUTE + 500, candles=1),
        *_tick(MINUTE + 2_000, candles=1),  # a second fetch for the same close: not a decision
        *_tick(2 * MINUTE + 500, candles=1),
        *_tick(2 * MINUTE + 2_000),
    ]
    kinds = [t.kind for t in tally_ticks(ends, hits, [MINUTE, 2 * MINUTE])]
    assert kinds == [BETWEEN, DECISION, BETWEEN, DECISION, BETWEEN]


def test_the_request_log_without_the_simulators_own_paths() -> None:
    entries = [
        {"method": "GET", "path": "/fapi/v1/time", "params": {}, "at_ms": 20},
        {"method": "GET", "path": "/sim/requests", "params": {}, "at_ms": 5},
        {"method": "POST", "path": "/fapi/v1/order", "params": {"a": "b"}, "at_ms": 10},
    ]
    hits = hits_from_log(entries)
    assert [(h.endpoint, h.at_ms) for h in hits] == [
        ("POST /fapi/v1/order", 10),
        ("GET /fapi/v1/time", 20),
    ]
    with pytest.raises(TypeError):
        hits_from_log(["not an object"])


def test_endpoint_medians_count_a_missing_endpoint_as_zero() -> None:
    tallies = tally_ticks(
        [0, 1_000, 2_000, 3_000],
        [*_tick(100, candles=2), *_tick(1_100), *_tick(2_100, candles=1)],
        [],
    )
    medians = endpoint_medians(tallies)
    assert medians["GET /fapi/v1/klines"] == 1.0
    assert medians["GET /fapi/v3/account"] == 1.0
    assert endpoint_medians(tallies[1:2]) == {name: 1.0 for name in SYNC}


def _order(symbol: str, candle_ms: int, at_ms: int, *, path: str = "/fapi/v1/order") -> Hit:
    cid = make_client_id(
        instance="bench", symbol=symbol, candle_time_ms=candle_ms, seq=0, purpose=Purpose.ENTRY
    )
    key = "newClientOrderId" if path == "/fapi/v1/order" else "clientAlgoId"
    return Hit("POST", path, at_ms, {key: cid})


def test_order_latency_counts_the_first_order_of_each_candle_from_its_wake() -> None:
    candle = 10 * MINUTE  # closes at 11 min; the wake is 1.5 s later
    wake = candle + MINUTE + 1_500
    hits = [
        _order("BTC/USDT:USDT", candle, wake + 240),
        _order("BTC/USDT:USDT", candle, wake + 900, path="/fapi/v1/algoOrder"),  # its stop
        _order("ETH/USDT:USDT", candle, wake + 480),
        _order("ETH/USDT:USDT", candle - MINUTE, wake - MINUTE + 60),  # closed before READY
        Hit("POST", "/fapi/v1/order", wake, {"newClientOrderId": "someone-else"}),
        Hit("GET", "/fapi/v1/order", wake, {}),
    ]
    got = order_latencies_ms(
        hits, ready_ms=candle + 30_000, timeframe_ms=MINUTE, grace_ms=1_500, speed=60.0
    )
    assert sorted(got) == [4.0, 8.0]  # 240 and 480 simulator ms at 60x
