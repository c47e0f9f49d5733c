"""Text output of a backtest: the trades table and the metrics block."""

from __future__ import annotations

from decimal import Decimal

from trendbotd.backtest.csvdata import format_ms, format_timeframe
from trendbotd.backtest.engine import BacktestResult
from trendbotd.backtest.metrics import Metrics
from trendbotd.core.strategy.signals import Direction


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def trade_lines(result: BacktestResult) -> list[str]:
    market = result.settings.market
    places = _decimals(market.price_step)
    header = (
        f"{'#':>4}  {'side':<5}  {'entry (UTC)':<16}  {'entry':>12}  {'stop':>12}  "
        f"{'exit (UTC)':<16}  {'exit':>12}  {'amount':>12}  {'pnl':>12}  reason"
    )
    lines = [header]
    for number, t in enumerate(result.trades, start=1):
        side = "long" if t.direction is Direction.LONG else "short"
        lines.append(
            f"{number:>4}  {side:<5}  {format_ms(t.entry_ms):<16}  {t.entry_price:>12.{places}f}  "
            f"{t.initial_stop:>12.{places}f}  {format_ms(t.exit_ms):<16}  "
            f"{t.exit_price:>12.{places}f}  {t.amount.normalize():>12f}  {t.pnl:>12.2f}  "
            f"{t.exit_reason}"
        )
    if not result.trades:
        lines.append("   (no trades)")
    return lines


def skipped_lines(result: BacktestResult, *, limit: int = 5) -> list[str]:
    if not result.skipped:
        return []
    lines = [f"skipped entries: {len(result.skipped)} (sizing refused them)"]
    for s in result.skipped[:limit]:
        lines.append(f"  {format_ms(s.time_ms)} {s.direction.name.lower()}: {s.reason}")
    if len(result.skipped) > limit:
        lines.append(f"  ... and {len(result.skipped) - limit} more")
    return lines


def metric_lines(metrics: Metrics, *, timeframe_ms: int, currency: str) -> list[str]:
    win = (
        f"{metrics.win_rate:.1%} ({metrics.wins} of {metrics.trades})"
        if metrics.win_rate is not None
        else "n/a (no trades)"
    )
    rows = [
        ("net return", f"{metrics.net_return:+.2%}"),
        ("max drawdown", f"{metrics.max_drawdown:.2%}"),
        ("sharpe", f"{metrics.sharpe:.2f} (annualised from {format_timeframe(timeframe_ms)} bars)"),
        ("win rate", win),
        ("exposure", f"{metrics.exposure:.1%} of {metrics.bars} bars"),
        ("trades", str(metrics.trades)),
        ("fees", f"{metrics.fees:.2f} {currency}"),
        ("start equity", f"{metrics.start_equity:.2f} {currency}"),
        ("final equity", f"{metrics.final_equity:.2f} {currency}"),
    ]
    return [f"{name:<14}{value}" for name, value in rows]
