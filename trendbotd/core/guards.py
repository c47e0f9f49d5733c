"""Pre-trade guards: pure functions, each returning allow or a block with a reason.

Exits (stops, exits, flattening) are never blocked by risk guards: a guard that keeps a
position open when the bot wants out makes things worse. Blocks are logged and
journalled by the caller. ``check_all`` runs every guard and reports each result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.config import RiskConfig
from trendbotd.core.domain import ZERO, Balance, OrderType, Position, Side
from trendbotd.core.records import DailyStart, Intent, IntentState, Purpose, TradingMode

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class GuardResult:
    guard: str
    allowed: bool
    reason: str = ""
    alert: bool = False  # a human should look (position larger than expected, kill switch)


def allow(guard: str) -> GuardResult:
    return GuardResult(guard, True)


def block(guard: str, reason: str, *, alert: bool = False) -> GuardResult:
    return GuardResult(guard, False, reason, alert)


@dataclass(frozen=True, slots=True)
class ProposedOrder:
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    purpose: Purpose
    reference_price: Decimal  # for notional checks: the limit price or the last price
    client_order_id: str = ""

    @property
    def is_entry(self) -> bool:
        return self.purpose is Purpose.ENTRY

    @property
    def notional(self) -> Decimal:
        return abs(self.amount) * self.reference_price


@dataclass(frozen=True, slots=True)
class GuardContext:
    now_ms: int
    mode: TradingMode
    balance: Balance | None  # None: the balance fetch failed
    positions: Mapping[str, Position]  # the exchange's, non-flat
    expected: Mapping[str, Decimal]  # the journal's
    recent: Sequence[Intent]  # journal intents from the duplicate window (or longer)
    daily_start: DailyStart | None
    leverage: int  # the leverage the account is set to


# ----- the guards -----


def trading_mode(
    order: ProposedOrder, *, mode: TradingMode, config_reduce_only: bool = False
) -> GuardResult:
    """The journal's mode, and the operator's ``[risk] reduce_only`` switch on top of it."""
    name = "trading_mode"
    if mode is TradingMode.HALTED and order.is_entry:
        return block(name, "halted by the operator: no new entries until `trendbotd resume`")
    if mode is TradingMode.REDUCE_ONLY and order.is_entry:
        return block(name, "reduce-only mode: only exits are allowed")
    if config_reduce_only and order.is_entry:
        return block(name, "risk.reduce_only is set in the config: only exits are allowed")
    return allow(name)


def duplicate_order(
    order: ProposedOrder, recent: Sequence[Intent], *, now_ms: int, window_s: float
) -> GuardResult:
    """Same symbol, side, size, type and purpose as an intent of the last ``window_s``
    seconds.

    Intents the exchange refused or that were confirmed absent never became orders and
    do not count; the same client id is the same intent, not a duplicate. A different
    purpose is a different order: a reversal's entry matches the close sent just before
    it in all but that (a sell of the same size), and is exactly what was decided.
    """
    name = "duplicate_order"
    since = now_ms - int(window_s * 1000)
    for intent in recent:
        if (
            intent.created_ms >= since
            and intent.client_order_id != order.client_order_id
            and intent.state not in (IntentState.REJECTED, IntentState.ABANDONED)
            and intent.symbol == order.symbol
            and intent.side is order.side
            and intent.type is order.type
            and intent.amount == order.amount
            and intent.purpose is order.purpose
        ):
            age_s = (now_ms - intent.created_ms) / 1000
            return block(
                name,
                f"same {order.side} {order.type} {order.amount} {order.symbol} as "
                f"{intent.client_order_id} {age_s:.0f}s ago (window {window_s:g}s)",
            )
    return allow(name)


def position_size(
    order: ProposedOrder, *, actual: Decimal, expected: Decimal, max_ratio: float
) -> GuardResult:
    """A position larger than the journal expects blocks adding to it, and alerts."""
    name = "position_size"
    if not order.is_entry:
        return allow(name)
    if expected == 0 and actual != 0:
        return block(
            name,
            f"{order.symbol}: exchange position {actual} where the journal expects none",
            alert=True,
        )
    if expected != 0 and abs(actual) > abs(expected) * Decimal(str(max_ratio)):
        return block(
            name,
            f"{order.symbol}: exchange position {actual} exceeds {max_ratio:g}x the expected "
            f"{expected}",
            alert=True,
        )
    return allow(name)


def balance_sanity(
    order: ProposedOrder, *, balance: Balance | None, min_balance: Decimal
) -> GuardResult:
    """No new entries on a failed or implausible balance; exits stay allowed."""
    name = "balance_sanity"
    if not order.is_entry:
        return allow(name)
    problem = _balance_problem(balance, min_balance)
    return block(name, problem) if problem else allow(name)


def _balance_problem(balance: Balance | None, min_balance: Decimal) -> str | None:
    if balance is None:
        return "balance unavailable (fetch failed); no new entries"
    total, free = balance.total, balance.free
    if not (total.is_finite() and free.is_finite()):
        return f"balance is not a finite number (total={total} free={free})"
    if total <= 0 or total < min_balance:
        return f"equity {total} below the plausible minimum {min_balance}"
    if free > total:
        return f"free balance {free} exceeds equity {total}: implausible"
    if free <= 0:
        return f"no free margin (free={free})"
    return None


def daily_loss(
    order: ProposedOrder, *, equity: Decimal | None, start: DailyStart | None, limit: float
) -> GuardResult:
    """Kill switch: once equity is ``limit`` below the day's start, no new entries until
    the next UTC day (a new start) or an operator resume (which resets the start)."""
    name = "daily_loss"
    if not order.is_entry:
        return allow(name)
    if equity is None or start is None:
        return block(name, "equity or start-of-day equity unknown; no new entries")
    if start.equity <= 0:
        return allow(name)
    floor = start.equity * (1 - Decimal(str(limit)))
    if equity < floor:
        loss = (start.equity - equity) / start.equity
        return block(
            name,
            f"daily loss {loss:.2%} reached the limit {limit:.2%} (equity {equity}, "
            f"day start {start.equity}); entries stop until the next UTC day or a resume",
            alert=True,
        )
    return allow(name)


def max_open_positions(
    order: ProposedOrder, *, open_symbols: Sequence[str], max_open: int
) -> GuardResult:
    name = "max_open_positions"
    if not order.is_entry or order.symbol in open_symbols:
        return allow(name)
    if len(open_symbols) >= max_open:
        return block(name, f"{len(open_symbols)} positions open, the maximum is {max_open}")
    return allow(name)


def max_leverage(
    order: ProposedOrder,
    *,
    positions: Mapping[str, Position],
    equity: Decimal | None,
    leverage: int,
    max_leverage: int,
    max_notional: Decimal,
) -> GuardResult:
    """Configured leverage, per-position notional and account-wide effective leverage."""
    name = "max_leverage"
    if not order.is_entry:
        return allow(name)
    if leverage > max_leverage:
        return block(name, f"account leverage {leverage}x exceeds the maximum {max_leverage}x")
    held = positions.get(order.symbol)
    symbol_notional = order.notional + (abs(held.amount) * held.entry_price if held else ZERO)
    if symbol_notional > max_notional:
        return block(name, f"{order.symbol} notional {symbol_notional:.2f} exceeds {max_notional}")
    if equity is None or equity <= 0:
        return block(name, "equity unknown; cannot bound leverage")
    total = order.notional + sum((abs(p.amount) * p.entry_price for p in positions.values()), ZERO)
    effective = total / equity
    if effective > max_leverage:
        return block(
            name, f"effective leverage {effective:.2f}x would exceed the maximum {max_leverage}x"
        )
    return allow(name)


# ----- all together -----


def check_all(order: ProposedOrder, ctx: GuardContext, risk: RiskConfig) -> list[GuardResult]:
    """Every guard's verdict, in a fixed order (mode first)."""
    equity = ctx.balance.total if ctx.balance is not None else None
    open_symbols = sorted(s for s, p in ctx.positions.items() if not p.is_flat)
    held = ctx.positions.get(order.symbol)
    return [
        trading_mode(order, mode=ctx.mode, config_reduce_only=risk.reduce_only),
        duplicate_order(order, ctx.recent, now_ms=ctx.now_ms, window_s=risk.duplicate_window_s),
        position_size(
            order,
            actual=held.amount if held else ZERO,
            expected=ctx.expected.get(order.symbol, ZERO),
            max_ratio=risk.max_position_ratio,
        ),
        balance_sanity(order, balance=ctx.balance, min_balance=risk.min_balance),
        daily_loss(order, equity=equity, start=ctx.daily_start, limit=risk.daily_loss_limit),
        max_open_positions(order, open_symbols=open_symbols, max_open=risk.max_open_positions),
        max_leverage(
            order,
            positions=ctx.positions,
            equity=equity,
            leverage=ctx.leverage,
            max_leverage=risk.max_leverage,
            max_notional=risk.max_notional,
        ),
    ]


def first_block(results: Sequence[GuardResult]) -> GuardResult | None:
    return next((r for r in results if not r.allowed), None)


# ----- the day boundary of the kill switch -----


def utc_day(now_ms: int) -> int:
    return now_ms // DAY_MS


def roll_daily_start(
    stored: DailyStart | None, *, now_ms: int, equity: Decimal | None
) -> DailyStart | None:
    """The start-of-day equity to use now: kept within the day, renewed on a new UTC day.

    Returns ``stored`` unchanged when nothing is to be written (same day, or no equity
    known to start a new day with).
    """
    today = utc_day(now_ms)
    if stored is not None and stored.day == today:
        return stored
    if equity is None:
        return stored
    return DailyStart(today, equity)


def resume_daily_start(*, now_ms: int, equity: Decimal) -> DailyStart:
    """An operator's resume: the loss is measured from here on."""
    return DailyStart(utc_day(now_ms), equity)
