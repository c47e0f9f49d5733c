"""The trade planner: one symbol's view in, the actions to take out. Pure.

The live tick and the backtest both call it, so they size, stop and exit the same way
by construction. Two steps, because an entry's inputs can depend on what happens first:

1. ``plan(decision, view)`` -- after the strategy's decision at a closed candle: close the
   position (EXIT, REVERSE), move its stop (on the price grid; nothing when that stop is
   already live), and say when an entry is due (``EntryDue``).
2. ``plan_entry(due, entry)`` -- size the entry on the equity known at that moment (for a
   reversal: after the close filled) and run the pre-trade guards: ``Enter``, ``Skip``
   (sizing said no) or ``Block`` (a guard said no).

``decide_symbol`` runs the strategy on a window of closed candles (the live entry point);
the backtest passes ``decide_bar``'s decision from its precomputed signals instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.config import RiskConfig, StrategyParams
from trendbotd.core import guards
from trendbotd.core.client_ids import make_client_id
from trendbotd.core.domain import Candle, Market, OrderType, Position, Side
from trendbotd.core.records import Purpose
from trendbotd.core.sizing import round_stop, size_position, to_decimal
from trendbotd.core.strategy import (
    Action,
    CandleArrays,
    Decision,
    Direction,
    PositionView,
    decide,
)

# ----- actions -----


@dataclass(frozen=True, slots=True)
class Close:
    """Close the whole position at market (reduce-only)."""

    reason: str
    reverse: bool = False  # an entry the other way follows once the exchange shows flat


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Replace the protective stop with one at ``new_price`` (new first, old canceled)."""

    new_price: Decimal
    long: bool


@dataclass(frozen=True, slots=True)
class EntryDue:
    """An entry the strategy wants: ``plan_entry`` sizes and guards it."""

    direction: Direction
    stop_price: float
    reason: str


@dataclass(frozen=True, slots=True)
class Enter:
    side: Side
    amount: Decimal
    entry_price: Decimal  # on the price grid: the reference the size was computed from
    stop_price: Decimal  # on the price grid, away from the entry
    client_order_id: str = ""  # "" when no guard inputs were given (the backtest)


@dataclass(frozen=True, slots=True)
class Skip:
    """Sizing refused the entry (too small, bad stop, no equity)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Block:
    """A pre-trade guard refused the entry."""

    guard: str
    reason: str
    alert: bool = False
    client_order_id: str | None = None


Planned = Close | MoveStop | EntryDue
EntryOutcome = Enter | Skip | Block


# ----- views -----


@dataclass(frozen=True, slots=True)
class LiveStop:
    price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class SymbolView:
    """What ``plan`` needs about one symbol at a closed candle."""

    position: Position | None  # None or flat: no position
    stop_price: Decimal | None  # the newest live stop closing the position: the one trailed
    live_stops: Sequence[LiveStop]  # all our acknowledged stops on the symbol
    market: Market


@dataclass(frozen=True, slots=True)
class SizingRules:
    risk_per_trade: float
    max_leverage: int  # the leverage positions have on the exchange
    max_notional: Decimal


@dataclass(frozen=True, slots=True)
class GuardInputs:
    """The pre-trade guards' view of the account (live only; the backtest has none)."""

    instance: str  # for the entry's client order id, which the duplicate guard checks
    context: guards.GuardContext  # positions: after any close this tick
    risk: RiskConfig


@dataclass(frozen=True, slots=True)
class EntryView:
    symbol: str
    candle_time_ms: int
    price: Decimal  # the decision close: the expected fill of a market entry
    equity: Decimal | None  # None: unknown (a failed balance read): no new entries
    market: Market
    sizing: SizingRules
    guards: GuardInputs | None = None


# ----- planning -----


def decide_symbol(candles: Sequence[Candle], params: StrategyParams, view: SymbolView) -> Decision:
    """The strategy's decision at the last of ``candles`` (closed) for the view's position."""
    position = PositionView.from_position(view.position, stop_price=view.stop_price)
    return decide(CandleArrays.from_candles(list(candles)), params, position)


def plan(decision: Decision, view: SymbolView) -> list[Planned]:
    """Close / move the stop / say an entry is due, in the order they are to happen."""
    action = decision.action
    held = view.position is not None and not view.position.is_flat
    if action is Action.MOVE_STOP:
        move = _move_stop(decision, view)
        return [move] if move is not None else []
    out: list[Planned] = []
    if action in (Action.EXIT, Action.REVERSE) and held:
        out.append(Close(decision.reason, reverse=action is Action.REVERSE))
    enters = action in (Action.ENTER, Action.REVERSE) and decision.direction is not Direction.FLAT
    if enters and decision.stop_price is not None:
        out.append(EntryDue(decision.direction, decision.stop_price, decision.reason))
    return out


def _move_stop(decision: Decision, view: SymbolView) -> MoveStop | None:
    position = view.position
    if position is None or position.is_flat or decision.stop_price is None:
        return None
    long = position.amount > 0
    new = round_stop(decision.stop_price, long=long, market=view.market)
    if any(s.price == new and s.amount == abs(position.amount) for s in view.live_stops):
        return None  # that stop is already live
    return MoveStop(new, long)


def plan_entry(due: EntryDue, view: EntryView) -> EntryOutcome:
    """Size the entry on ``view.equity`` and, with guard inputs, run every guard."""
    if view.equity is None:
        return Block("balance_sanity", "balance unknown: no new entries")
    sizing = size_position(
        equity=view.equity,
        entry_price=view.price,
        stop_price=to_decimal(due.stop_price),
        risk_per_trade=view.sizing.risk_per_trade,
        max_leverage=view.sizing.max_leverage,
        max_notional=view.sizing.max_notional,
        market=view.market,
    )
    if not sizing.ok:
        return Skip(sizing.skip_reason or "skipped")
    side = Side.BUY if due.direction is Direction.LONG else Side.SELL
    enter = Enter(side, sizing.amount, sizing.entry_price, sizing.stop_price)
    if view.guards is None:
        return enter
    return _guarded(enter, view, view.guards)


def _guarded(enter: Enter, view: EntryView, g: GuardInputs) -> EntryOutcome:
    at = view.candle_time_ms
    cid = make_client_id(instance=g.instance, symbol=view.symbol, candle_time_ms=at, seq=0,
                         purpose=Purpose.ENTRY)  # fmt: skip
    proposed = guards.ProposedOrder(view.symbol, enter.side, OrderType.MARKET, enter.amount,
                                    Purpose.ENTRY, enter.entry_price, cid)  # fmt: skip
    blocked = guards.first_block(guards.check_all(proposed, g.context, g.risk))
    if blocked is not None:
        return Block(blocked.guard, blocked.reason, alert=blocked.alert, client_order_id=cid)
    return Enter(enter.side, enter.amount, enter.entry_price, enter.stop_price, cid)
