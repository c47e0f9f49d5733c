"""Backtest: CSV loading, fills on a crafted series, metrics on known curves, CLI exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import random
import statistics
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from trendbotd.backtest import engine, main
from trendbotd.backtest.csvdata import BacktestDataError, Gap, load_csv
from trendbotd.backtest.engine import BacktestSettings, run_backtest, synthetic_market
from trendbotd.backtest.metrics import compute_metrics, max_drawdown, sharpe_ratio
from trendbotd.config import StrategyParams
from trendbotd.core.domain import Market
from trendbotd.core.strategy.candles import CandleArrays
from trendbotd.core.strategy.signals import Decision, Direction, PositionView, decide

D = Decimal
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
HEADER = "timestamp,open,high,low,close,volume\n"

# --- CSV ---


def write(tmp_path: Path, text: str, name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_epoch_ms_and_iso_timestamps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + f"{T0},1,2,0.5,1.5,10\n"
        + "2024-01-01T01:00:00Z,1.5,2,1,1.8,11\n"
        + "2024-01-01T02:00:00+00:00,1.8,2,1,1.2,12\n"
        + "2024-01-01 03:00:00,1.2,1.3,1.1,1.25,0\n"  # no offset: UTC
        + f"{(T0 + 4 * HOUR) // 1000},1.25,1.3,1.2,1.3,1\n",  # epoch seconds, by size
    )
    data = load_csv(path)
    assert data.candles.open_time_ms.tolist() == [T0 + i * HOUR for i in range(5)]
    assert data.candles.close.tolist() == [1.5, 1.8, 1.2, 1.25, 1.3]
    assert data.report.timeframe_ms == HOUR and data.report.clean
    assert data.report.lines() == [
        f"data: {path}: 5 candles of 1h from 2024-01-01 00:00 to 2024-01-01 04:00"
    ]


def test_csv_column_order_case_bom_extra_columns_blank_lines(tmp_path: Path) -> None:
    text = (
        "\ufeffClose,Volume,Timestamp,Open,High,Low,trades\n\n"
        f"5,1,{T0},4,6,3,9\n\n6,1,{T0 + HOUR},5,7,4,9\n"
    )
    data = load_csv(write(tmp_path, text))
    assert data.candles.open.tolist() == [4.0, 5.0]
    assert data.candles.high.tolist() == [6.0, 7.0] and data.candles.low.tolist() == [3.0, 4.0]


def test_csv_unsorted_duplicates_and_gaps_are_reported_not_fatal(tmp_path: Path) -> None:
    rows = [
        (T0 + 2 * HOUR, "1,2,1,1,1"),
        (T0, "1,2,1,1,1"),
        (T0 + HOUR, "1,2,1,1,1"),
        (T0 + HOUR, "1,2,1,1.5,1"),  # duplicate with other values: the first is kept
        (T0, "1,2,1,1,1"),  # identical duplicate
        (T0 + 6 * HOUR, "1,2,1,1,1"),  # 3 bars missing
        (T0 + 7 * HOUR, "1,2,1,1,1"),
        (T0 + 10 * HOUR, "1,2,1,1,1"),  # 2 bars missing
    ]
    path = write(tmp_path, HEADER + "".join(f"{t},{v}\n" for t, v in rows))
    data = load_csv(path)
    r = data.report
    assert data.candles.open_time_ms.tolist() == sorted({t for t, _ in rows})
    assert data.candles.close.tolist()[1] == 1.0, "first of the duplicates kept"
    assert r.unsorted and r.rows == 8 and r.candles == 6
    assert r.duplicates == (T0, T0 + HOUR) and r.conflicting == 1
    assert r.gaps == (Gap(T0 + 2 * HOUR, 3), Gap(T0 + 7 * HOUR, 2)) and r.missing_bars == 5
    text = "\n".join(r.lines())
    assert "sorted" in text and "2 duplicate timestamps (1 with different values)" in text
    assert "2 gaps, 5 bars missing" in text


def test_csv_irregular_spacing_is_reported(tmp_path: Path) -> None:
    times = [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 2 * HOUR + 1800_000, T0 + 3 * HOUR + 1800_000]
    data = load_csv(write(tmp_path, HEADER + "".join(f"{t},1,1,1,1,1\n" for t in times)))
    assert data.report.timeframe_ms == HOUR and data.report.irregular == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{T0},1,2,0.5,abc,1\n", ":2: close 'abc' is not a number"),
        (f"{T0},1,2,0.5,1.5,1\n{T0 + HOUR},1,2,0.5\n", ":3: expected 6 fields, got 4"),
        (f"{T0},1,2,0.5,1.5,1\n\n{T0 + HOUR},1,0.4,0.5,0.45,1\n", ":4: high 0.4 is below low 0.5"),
        (f"{T0},3,2,0.5,1.5,1\n", ":2: open 3 is outside low..high 0.5..2"),
        (f"{T0},1,2,0.5,2.5,1\n", ":2: close 2.5 is outside"),
        (f"{T0},1,2,0,1.5,1\n", ":2: low 0 is not positive"),
        (f"{T0},1,2,0.5,1.5,-1\n", ":2: volume -1 is negative"),
        (f"{T0},1,2,0.5,nan,1\n", ":2: close 'nan' is not a finite number"),
        ("yesterday,1,2,0.5,1.5,1\n", ":2: timestamp 'yesterday' is neither epoch"),
        (f"{T0},1,2,0.5,1.5,1\n", "need at least 2 candles, found 1"),
        ("", "need at least 2 candles, found 0"),
    ],
)
def test_csv_bad_rows_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, HEADER + body)
    with pytest.raises(BacktestDataError) as e:
        load_csv(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_csv_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(BacktestDataError, match="data file not found"):
        load_csv(tmp_path / "missing.csv")
    with pytest.raises(BacktestDataError, match=":1: header must name the columns"):
        load_csv(write(tmp_path, f"{T0},1,2,0.5,1.5,1\n"))
    with pytest.raises(BacktestDataError, match="missing volume"):
        load_csv(write(tmp_path, "timestamp,open,high,low,close\n"))
    with pytest.raises(BacktestDataError, match="empty file"):
        load_csv(write(tmp_path, ""))
    (tmp_path / "bin.csv").write_bytes(b"timestamp,open\xff\n")
    with pytest.raises(BacktestDataError, match="not UTF-8"):
        load_csv(tmp_path / "bin.csv")
    with pytest.raises(BacktestDataError, match="is a directory"):
        load_csv(tmp_path)


# --- the engine on a crafted series ---

MARKET = Market(
    symbol="TEST/USDT:USDT",
    exchange_symbol="TESTUSDT",
    amount_step=D("0.001"),
    price_step=D("0.01"),
    min_amount=D("0.001"),
    min_notional=D(5),
)
# A 5-bar breakout, 3-bar exit channel, ATR(3), stop 2 ATRs; the trail is kept out of the way.
PARAMS = StrategyParams(
    kind="donchian",
    breakout=5,
    exit_breakout=3,
    atr_period=3,
    atr_stop_mult=2.0,
    trail_mult=50.0,
    allow_short=False,
    min_efficiency=0.0,  # the crafted series are too short for the trend filter
)
SETTINGS = BacktestSettings(market=MARKET, start_equity=D(10000), max_leverage=3)
FLAT_BARS = [(100.0, 101.0, 99.0, 100.0)] * 10
# Bar 10 closes at 102.5 above the 5-bar high 101: long at the close. ATR(3) there is
# (2*2 + 3.5)/3 = 2.5, so the stop is 102.5 - 5 = 97.5. Bar 11 opens at 102.6: the fill.
BREAKOUT = [(100.0, 103.0, 99.5, 102.5), (102.6, 104.0, 102.0, 103.5)]


def arrays(bars: list[tuple[float, float, float, float]]) -> CandleArrays:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*bars, strict=True))
    n = len(bars)
    return CandleArrays(
        open_time_ms=T0 + np.arange(n, dtype=np.int64) * HOUR,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=np.ones(n),
    )


def fee(amount: str, price: str) -> Decimal:
    return D(amount) * D(price) * D("0.0005")


def test_entry_fills_at_the_next_open_and_the_stop_at_its_price() -> None:
    tail = [(103.5, 104.0, 96.0, 97.0)] + [(97.0, 97.5, 96.5, 97.0)] * 3
    candles = arrays(FLAT_BARS + BREAKOUT + tail)
    result = run_backtest(candles, PARAMS, SETTINGS)
    assert len(result.trades) == 1
    t = result.trades[0]
    # Sized at the decision close, as the live loop sizes: 1% of 10000 over
    # 102.5 - 97.5 = 5 -> 20.000. It fills at the next open, 102.6.
    assert (t.direction, t.amount, t.entry_price, t.initial_stop) == (
        Direction.LONG,
        D("20.000"),
        D("102.6"),
        D("97.50"),
    )
    assert (t.entry_ms, t.exit_ms) == (T0 + 11 * HOUR, T0 + 12 * HOUR)
    assert (t.exit_price, t.exit_reason) == (D("97.50"), "stop")
    assert t.fees == fee("20.000", "102.6") + fee("20.000", "97.50")
    assert t.pnl == D("20.000") * (D("97.50") - D("102.6")) - t.fees
    assert result.final_equity == D(10000) + t.pnl
    assert result.equity[10] == 10000.0  # flat at the decision close
    assert result.equity[11] == pytest.approx(
        10000 - float(fee("20.000", "102.6")) + 20.0 * (103.5 - 102.6)
    )
    assert result.equity[-1] == float(result.final_equity)
    assert result.in_position.tolist() == [False] * 11 + [True] + [False] * 4


def test_gap_through_the_stop_fills_at_the_open() -> None:
    tail = [(95.0, 96.0, 94.0, 95.5)] + [(95.5, 96.0, 95.0, 95.5)] * 3
    result = run_backtest(arrays(FLAT_BARS + BREAKOUT + tail), PARAMS, SETTINGS)
    (t,) = result.trades
    assert (t.exit_price, t.exit_reason, t.exit_ms) == (D("95.0"), "stop gap", T0 + 12 * HOUR)


def test_exit_signal_fills_at_the_next_open_with_slippage() -> None:
    # Bar 13 closes at 99 below the 3-bar low 99.5 while staying above the stop: exit at
    # the open of bar 14, 10 bps worse. The entry paid 10 bps too.
    tail = [(103.5, 104.0, 101.0, 101.5), (101.5, 101.6, 98.8, 99.0), (99.2, 99.5, 98.9, 99.0)]
    settings = dataclasses.replace(SETTINGS, slippage_bps=D(10))
    (t,) = run_backtest(arrays(FLAT_BARS + BREAKOUT + tail), PARAMS, settings).trades
    assert t.entry_price == D("102.6") * D("1.001")
    # sized at the decision close (102.5 - 97.5 = 5 -> 20.000): slippage costs, it does
    # not change the size
    assert t.amount == D("20.000")
    assert (t.exit_price, t.exit_reason) == (D("99.2") * D("0.999"), "exit signal")
    assert t.exit_ms == T0 + 14 * HOUR


def test_open_position_is_closed_at_the_end_and_last_bar_decisions_dropped() -> None:
    # The breakout bar is the last but one: the entry fills on the last bar and is closed
    # at its close. A breakout on the very last bar cannot fill: no trade.
    result = run_backtest(arrays(FLAT_BARS + BREAKOUT), PARAMS, SETTINGS)
    (t,) = result.trades
    assert (t.exit_reason, t.exit_price, t.exit_ms) == ("end of data", D("103.5"), T0 + 11 * HOUR)
    assert result.equity[-1] == float(result.final_equity)
    assert run_backtest(arrays(FLAT_BARS + BREAKOUT[:1]), PARAMS, SETTINGS).trades == []


def test_bars_before_the_first_decision_only_warm_up() -> None:
    bars = FLAT_BARS + BREAKOUT + [(103.5, 104.0, 103.0, 103.5)] * 3
    late = dataclasses.replace(SETTINGS, first_decision_ms=T0 + 11 * HOUR)
    result = run_backtest(arrays(bars), PARAMS, late)
    # the breakout bar (10) is history: no entry; bar 11 still sits above the 5-bar high
    # (103 of bar 10) at 103.5, so the first decided bar enters and fills at bar 12
    assert result.decisions == len(bars) - 11
    assert [t.entry_ms for t in result.trades] == [T0 + 12 * HOUR]
    assert run_backtest(arrays(bars), PARAMS, SETTINGS).trades[0].entry_ms == T0 + 11 * HOUR


def test_entries_refused_by_sizing_are_listed() -> None:
    poor = dataclasses.replace(SETTINGS, start_equity=D("0.05"))
    result = run_backtest(arrays(FLAT_BARS + BREAKOUT + [(103.5, 104, 103, 103.5)]), PARAMS, poor)
    assert result.trades == [] and len(result.skipped) == 2  # bars 10 and 11 broke out
    assert (
        result.skipped[0].time_ms == T0 + 10 * HOUR
        and "below the minimum" in result.skipped[0].reason
    )


def walk_candles(n: int, seed: int) -> CandleArrays:
    rng = random.Random(seed)
    bars, price = [], 100.0
    for i in range(n):
        o = price
        price *= math.exp((0.003 if (i // 150) % 2 else -0.003) + rng.gauss(0, 0.01))
        bars.append((o, max(o, price) * 1.003, min(o, price) * 0.997, price))
    return arrays(bars)


def test_every_backtest_decision_is_what_the_live_entry_point_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = StrategyParams(kind="ema_cross", fast=5, slow=15, atr_period=5, min_efficiency=0.0)
    candles = walk_candles(400, seed=3)
    calls: list[tuple[int, PositionView, Decision]] = []
    real = engine.decide_bar

    def recording(bar, params_, position):  # type: ignore[no-untyped-def]
        decision = real(bar, params_, position)
        calls.append((len(calls), position, decision))
        return decision

    monkeypatch.setattr(engine, "decide_bar", recording)
    result = run_backtest(candles, params, SETTINGS)
    assert len(calls) == len(candles) == result.decisions
    assert len(result.trades) >= 4
    for i, position, decision in calls:
        live = decide(candles.head(i + 1), params, position)
        # equal but for the wording of "warming up" (decide sees the candle count)
        assert (live.action, live.direction, live.stop_price) == (
            decision.action,
            decision.direction,
            decision.stop_price,
        ), f"bar {i}"


def test_deterministic() -> None:
    candles = walk_candles(600, seed=9)
    params = StrategyParams(kind="donchian", breakout=20, exit_breakout=10, min_efficiency=0.0)
    a, b = run_backtest(candles, params, SETTINGS), run_backtest(candles, params, SETTINGS)
    assert a.trades == b.trades and np.array_equal(a.equity, b.equity) and len(a.trades) > 2


def test_synthetic_market_scales_with_price() -> None:
    btc = synthetic_market("BTC/USDT:USDT", 30000.0)
    assert (btc.price_step, btc.amount_step, btc.exchange_symbol) == (
        D("0.1"),
        D("0.0001"),
        "BTCUSDT",
    )
    cheap = synthetic_market("X/USDT:USDT", 0.5)
    assert (cheap.price_step, cheap.amount_step) == (D("0.000001"), D("10"))
    with pytest.raises(ValueError, match="positive"):
        synthetic_market("X/USDT:USDT", 0.0)


# --- metrics ---


def test_metrics_on_a_known_curve() -> None:
    equity = np.array([110.0, 99.0, 120.0])
    m = compute_metrics(
        equity=equity,
        start_equity=D(100),
        in_position=np.array([True, True, False]),
        trade_pnls=[D(10), D(-5), D(0), D(15)],
        fees=D("1.5"),
        timeframe_ms=HOUR,
    )
    assert m.net_return == pytest.approx(0.2)
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    returns = [0.1, -0.1, 120 / 99 - 1]
    expected = statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(365 * 24)
    assert m.sharpe == pytest.approx(expected)
    assert (m.win_rate, m.wins, m.trades) == (0.5, 2, 4)
    assert m.exposure == pytest.approx(2 / 3) and m.fees == 1.5 and m.bars == 3


def test_metrics_edges() -> None:
    flat = np.full(10, 100.0)
    assert sharpe_ratio(flat, start_equity=100.0, timeframe_ms=HOUR) == 0.0
    assert max_drawdown(flat, start_equity=100.0) == 0.0
    assert max_drawdown(np.array([50.0, 200.0, 100.0]), start_equity=100.0) == pytest.approx(0.5)
    daily = sharpe_ratio(
        np.array([101.0, 100.0, 102.0]), start_equity=100.0, timeframe_ms=86_400_000
    )
    hourly = sharpe_ratio(np.array([101.0, 100.0, 102.0]), start_equity=100.0, timeframe_ms=HOUR)
    assert hourly == pytest.approx(daily * math.sqrt(24))
    none = compute_metrics(
        equity=flat,
        start_equity=100,
        in_position=np.zeros(10, dtype=bool),
        trade_pnls=[],
        fees=0,
        timeframe_ms=HOUR,
    )
    assert none.win_rate is None and none.trades == 0 and none.exposure == 0.0


# --- the command ---


def csv_of(candles: CandleArrays) -> str:
    rows = zip(
        candles.open_time_ms.tolist(),
        candles.open.tolist(),
        candles.high.tolist(),
        candles.low.tolist(),
        candles.close.tolist(),
        strict=True,
    )
    return HEADER + "".join(f"{t},{o!r},{h!r},{lo!r},{c!r},1\n" for t, o, h, lo, c in rows)


CONFIG = """
[trading]
symbols = ["BTC/USDT:USDT"]
timeframe = "1h"

[strategy]
kind = "donchian"
breakout = 20
exit_breakout = 10
min_efficiency = 0
"""


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trendbotd backtest")
    main.add_arguments(parser)
    return main.run(parser.parse_args(list(argv)))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    data = write(tmp_path, csv_of(walk_candles(600, seed=9)), "data.csv")
    config = write(tmp_path, CONFIG, "bt.toml")
    return data, config


def test_cli_prints_trades_and_metrics(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, config = files
    assert run_cli("--data", str(data), "--config", str(config), "--slippage-bps", "2") == 0
    out = capsys.readouterr().out
    assert "600 candles of 1h" in out and "kind='donchian'" in out
    assert "entry (UTC)" in out and "stop" in out
    for label in ("net return", "max drawdown", "sharpe", "win rate", "exposure", "trades"):
        assert f"\n{label}" in out
    # the printed trade count is what the engine produced with the same inputs
    trades = int(out.split("\ntrades")[1].split()[0])
    loaded = load_csv(data)
    settings = BacktestSettings(
        market=synthetic_market("BTC/USDT:USDT", float(np.median(loaded.candles.close))),
        max_leverage=3,
        slippage_bps=D(2),
    )
    params = StrategyParams(kind="donchian", breakout=20, exit_breakout=10, min_efficiency=0.0)
    assert trades == len(run_backtest(loaded.candles, params, settings).trades) > 0


def test_cli_exit_codes(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, config = files
    bad_row = write(tmp_path, HEADER + f"{T0},1,2,0.5,x,1\n", "bad.csv")
    assert run_cli("--data", str(bad_row), "--config", str(config)) == 65
    assert f"{bad_row}:2: close 'x' is not a number" in capsys.readouterr().err
    assert run_cli("--data", str(tmp_path / "none.csv"), "--config", str(config)) == 65
    few = write(tmp_path, csv_of(walk_candles(15, seed=1)), "few.csv")
    assert run_cli("--data", str(few), "--config", str(config)) == 65
    assert "needs at least 21" in capsys.readouterr().err
    bad_config = write(tmp_path, "[strategy]\nkind = 'turtle'\n", "bad.toml")
    assert run_cli("--data", str(data), "--config", str(bad_config)) == 78
    assert "strategy.kind" in capsys.readouterr().err
    assert run_cli("--data", str(data), "--config", str(config), "--fee", "abc") == 64
    assert run_cli("--data", str(data), "--config", str(config), "--fee", "0.5") == 64
    assert run_cli("--data", str(data), "--config", str(config), "--equity", "-1") == 64
    assert "--equity -1 must be in" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is not None, reason="matplotlib installed"
)
def test_cli_plot_without_matplotlib(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, config = files
    out = tmp_path / "p.png"
    assert run_cli("--data", str(data), "--config", str(config), "--plot", str(out)) == 69
    assert "needs matplotlib" in capsys.readouterr().err and not out.exists()


def test_cli_warns_when_config_timeframe_differs(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = files
    config = write(tmp_path, CONFIG.replace('"1h"', '"4h"'), "4h.toml")
    assert run_cli("--data", str(data), "--config", str(config)) == 0
    assert "the config trades 4h bars, the data has 1h bars" in capsys.readouterr().err


def test_real_command_line(tmp_path: Path, files: tuple[Path, Path]) -> None:
    data, config = files
    bad = write(tmp_path, HEADER + f"{T0},1,2,0.5,1.5,1\n{T0 + HOUR},1,0.4,0.5,0.45,1\n", "bad.csv")
    command = [sys.executable, "-m", "trendbotd", "backtest", "--config", str(config)]
    ok = subprocess.run(
        [*command, "--data", str(data)], check=False, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert "net return" in ok.stdout
    failed = subprocess.run(
        [*command, "--data", str(bad)], check=False, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 65
    assert failed.stderr.strip() == f"trendbotd backtest: {bad}:3: high 0.4 is below low 0.5"
