"""``trendbotd backtest``: the live strategy and sizing code over candles from a CSV file.

Exit codes: 0 done, 64 bad option value, 65 bad or too short data, 69 ``--plot`` without
matplotlib, 73 plot file not writable, 78 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from trendbotd.backtest.csvdata import (
    BacktestDataError,
    LoadedData,
    format_timeframe,
    load_csv,
)
from trendbotd.backtest.engine import (
    DEFAULT_FEE_RATE,
    BacktestSettings,
    run_backtest,
    synthetic_market,
)
from trendbotd.backtest.metrics import compute_metrics
from trendbotd.backtest.plot import plotting_available, save_plot
from trendbotd.backtest.report import metric_lines, skipped_lines, trade_lines
from trendbotd.config import Config, load_config
from trendbotd.core.strategy.candles import CandleArrays, timeframe_ms
from trendbotd.core.strategy.signals import min_history
from trendbotd.errors import ConfigError
from trendbotd.exitcodes import ExitCode

_MAX_EQUITY = Decimal(10) ** 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="FILE.csv",
        help="candles: header timestamp,open,high,low,close,volume; epoch ms or ISO 8601 UTC",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help="strategy, risk and paper.start_balance from this file (default: the usual one)",
    )
    parser.add_argument(
        "--symbol", default=None, help="whose strategy settings to use (default: the first)"
    )
    parser.add_argument(
        "--fee",
        default=str(DEFAULT_FEE_RATE),
        metavar="RATE",
        help=f"fee per fill as a fraction of notional (default {DEFAULT_FEE_RATE} = 0.05%%)",
    )
    parser.add_argument(
        "--slippage-bps",
        default="0",
        metavar="BPS",
        help="market orders fill this many basis points worse than the open (default 0)",
    )
    parser.add_argument(
        "--equity",
        default=None,
        metavar="AMOUNT",
        help="starting equity (default: paper.start_balance of the config)",
    )
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="OUT.png", help="save a chart (needs matplotlib)"
    )


def _error(message: str, code: ExitCode) -> int:
    print(f"trendbotd backtest: {message}", file=sys.stderr)
    return int(code)


def _decimal_option(name: str, text: str, *, low: Decimal, high: Decimal) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not (value.is_finite() and low <= value <= high):
        raise ValueError(f"{name} {text} must be in [{low}, {high}]")
    return value


@dataclass(frozen=True, slots=True)
class _Options:
    fee: Decimal
    slippage_bps: Decimal
    equity: Decimal | None


def _options(args: argparse.Namespace) -> _Options:
    equity = None
    if args.equity is not None:
        equity = _decimal_option("--equity", args.equity, low=Decimal("0.01"), high=_MAX_EQUITY)
    return _Options(
        fee=_decimal_option("--fee", args.fee, low=Decimal(0), high=Decimal("0.1")),
        slippage_bps=_decimal_option(
            "--slippage-bps", args.slippage_bps, low=Decimal(0), high=Decimal(1000)
        ),
        equity=equity,
    )


def _settings(
    options: _Options, config: Config, *, symbol: str, candles: CandleArrays
) -> BacktestSettings:
    return BacktestSettings(
        market=synthetic_market(symbol, float(np.median(candles.close))),
        start_equity=options.equity or config.paper.start_balance,
        risk_per_trade=config.risk.risk_per_trade,
        max_leverage=config.trading.leverage,
        max_notional=config.risk.max_notional,
        fee_rate=options.fee,
        slippage_bps=options.slippage_bps,
    )


def _load(args: argparse.Namespace) -> tuple[Config, LoadedData] | int:
    """Options, config and data, or the exit code of the first thing that is wrong."""
    if args.plot is not None and not plotting_available():
        return _error(
            "--plot needs matplotlib, which is not installed "
            "(install the 'plot' extra: pip install 'trendbotd[plot]')",
            ExitCode.UNAVAILABLE,
        )
    try:
        config = load_config(args.config)
    except ConfigError as e:
        return _error(str(e), ExitCode.CONFIG_ERROR)
    try:
        data = load_csv(args.data)
    except BacktestDataError as e:
        return _error(str(e), ExitCode.DATA_ERROR)
    return config, data


def run(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
    except ValueError as e:
        return _error(str(e), ExitCode.USAGE)
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    config, data = loaded
    candles, report = data.candles, data.report
    symbol = args.symbol or config.trading.symbols[0]
    params = config.strategy_for(symbol)
    settings = _settings(options, config, symbol=symbol, candles=candles)
    for line in report.lines():
        print(line)
    if timeframe_ms(config.trading.timeframe) != report.timeframe_ms:
        print(
            f"warning: the config trades {config.trading.timeframe} bars, the data has "
            f"{format_timeframe(report.timeframe_ms)} bars; the data's are used",
            file=sys.stderr,
        )
    if len(candles) < min_history(params):
        return _error(
            f"{args.data}: {len(candles)} candles, the strategy needs at least "
            f"{min_history(params)} to decide anything",
            ExitCode.DATA_ERROR,
        )
    print(f"strategy: {symbol} {params}")
    result = run_backtest(candles, params, settings)
    metrics = compute_metrics(
        equity=result.equity,
        start_equity=settings.start_equity,
        in_position=result.in_position,
        trade_pnls=[t.pnl for t in result.trades],
        fees=result.fees,
        timeframe_ms=report.timeframe_ms,
    )
    print()
    for line in trade_lines(result) + skipped_lines(result):
        print(line)
    print()
    currency = symbol.partition(":")[2] or "USDT"
    for line in metric_lines(metrics, timeframe_ms=report.timeframe_ms, currency=currency):
        print(line)
    if args.plot is not None:
        try:
            save_plot(result, candles, args.plot, title=f"{symbol} {params.kind} backtest")
        except OSError as e:
            return _error(f"{args.plot}: cannot write the plot: {e.strerror}", ExitCode.CANT_CREATE)
        print(f"plot: {args.plot}")
    return int(ExitCode.OK)
