"""Writes tests/data/journal_v1.db: a journal as the release with schema v1 (the string
key-value ``kv`` table) leaves it, for tests/unit/test_journal_migration.py.

It must run against that release's code, not the current one (it refuses otherwise):

    git worktree add --detach /tmp/jbase df10413   # the last commit with schema v1
    PYTHONPATH=/tmp/jbase python3 tests/data/make_old_journal.py tests/data/journal_v1.db
    git worktree remove /tmp/jbase

Every value is fixed, so the test can state what must read back. The sequence is one an
operator can produce: a flatten executed, a second one requested while the daemon was
down, a resume before the daemon started again, then a sync that found a position opened
by hand (reduce-only, entered automatically) and a later sync where it no longer held.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from trendbotd.core import records as rec
from trendbotd.core.domain import ClockOffset, OrderType, Side
from trendbotd.journal import schema
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.operator_requests import FlattenRequest, finish_flatten, request_flatten
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.sync_mode import keep_mode_true

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = 1_700_000_000_000
HOUR = 3_600_000


def _intent(cid: str, purpose: rec.Purpose, seq: int, **kw: object) -> rec.Intent:
    values: dict[str, object] = {
        "client_order_id": cid,
        "symbol": BTC,
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "amount": Decimal("0.010"),
        "purpose": purpose,
        "candle_time_ms": T0 - HOUR,
        "seq": seq,
        "state": rec.IntentState.PENDING,
        "created_ms": T0,
        "updated_ms": T0,
        "protective_stop": Decimal("49000.5"),
    }
    values.update(kw)
    return rec.Intent(**values)  # type: ignore[arg-type]


def write_orders(j: Journal) -> None:
    j.orders.add_intent(_intent("e-filled", rec.Purpose.ENTRY, 0))
    j.orders.mark_sent("e-filled", now_ms=T0 + 1)
    j.orders.update_intent(
        "e-filled",
        rec.IntentUpdate(rec.IntentState.FILLED, "x1", Decimal("0.010"), Decimal("50010.25")),
        now_ms=T0 + 2,
    )
    stop = _intent(
        "s-acked", rec.Purpose.STOP, 0, side=Side.SELL, type=OrderType.STOP_MARKET,
        stop_price=Decimal("49000.5"), reduce_only=True, protective_stop=None,
        parent_client_order_id="e-filled",
    )  # fmt: skip
    j.orders.add_intent(stop)
    j.orders.mark_sent("s-acked", now_ms=T0 + 3)
    j.orders.update_intent("s-acked", rec.IntentUpdate(rec.IntentState.ACKED, "x2"), now_ms=T0 + 4)
    j.orders.add_intent(_intent("e-canceled", rec.Purpose.ENTRY, 1, type=OrderType.LIMIT,
                                price=Decimal("49500")))  # fmt: skip
    j.orders.mark_sent("e-canceled", now_ms=T0 + 5)
    j.orders.update_intent(
        "e-canceled",
        rec.IntentUpdate(rec.IntentState.CANCELED, "x3", Decimal("0.004"), Decimal("49500")),
        now_ms=T0 + 6,
    )
    j.orders.add_intent(_intent("x-unknown", rec.Purpose.EXIT, 0, symbol=ETH, side=Side.SELL,
                                reduce_only=True, protective_stop=None))  # fmt: skip
    j.orders.mark_sent("x-unknown", now_ms=T0 + 7)
    j.orders.update_intent(
        "x-unknown", rec.IntentUpdate(rec.IntentState.UNKNOWN, last_error="timeout"), now_ms=T0 + 8
    )
    j.orders.add_intent(_intent("e-pending", rec.Purpose.ENTRY, 0, candle_time_ms=T0))


def write_account(j: Journal) -> None:
    j.account.set_expected_position(ETH, Decimal("-0.5"), now_ms=T0 + 9)
    j.account.record_sync(
        [
            rec.PositionView(BTC, Decimal("0.014"), Decimal("49866.0"), Decimal("49000.5"),
                         "s-acked", T0 + 10),
            rec.PositionView(ETH, Decimal("-0.5"), Decimal("3000.1"), None, None, T0 + 10),
        ],
        taken_at_ms=T0 + 10,
    )  # fmt: skip
    j.decisions.record_guard_decision(
        at_ms=T0 + 11, symbol=BTC, guard="max_notional", allowed=True, reason="ok"
    )
    j.decisions.record_guard_decision(
        at_ms=T0 + 12, symbol=ETH, guard="daily_loss", allowed=False, reason="loss 3.1% > 3%",
        client_order_id="e-x",
    )  # fmt: skip


def write_controls(j: Journal) -> None:
    done = FlattenRequest(id=f"{T0 + 20}-41", symbols=None, operator="alice", note="",
                          at_ms=T0 + 20)  # fmt: skip
    request_flatten(j, done)
    finish_flatten(j, done, "done: BTC/USDT:USDT flat", now_ms=T0 + 21)
    pending = FlattenRequest(id=f"{T0 + 30}-42", symbols=(BTC, ETH), operator="bob",
                             note="exchange news", at_ms=T0 + 30)  # fmt: skip
    request_flatten(j, pending)
    j.controls.resume(reason="resumed by carol: checked", now_ms=T0 + 40, rebase_daily_start=False)
    keep_mode_true(j, "ETH/USDT:USDT opened by hand", now_ms=T0 + 50)
    keep_mode_true(j, None, now_ms=T0 + 60)
    j.controls.set_daily_start(rec.DailyStart(19675, Decimal("10234.5678")), now_ms=T0 + 70)
    j.controls.set_decided_candle(BTC, T0 - HOUR, now_ms=T0 + 80)
    j.controls.set_decided_candle(ETH, T0 - 2 * HOUR, now_ms=T0 + 81)
    record_clock_offset(j, ClockOffset(-37, 12, T0 + 90, 5, round_trip_ms=24), now_ms=T0 + 90)
    j.controls.set_last_tick(T0 + 100)


def write_all(j: Journal) -> None:
    """The whole sequence (the migration test replays it with the current code to compare)."""
    write_orders(j)
    write_account(j)
    write_controls(j)


def main(path: Path) -> None:
    if schema.SCHEMA_VERSION != 1:
        sys.exit(f"run this with the schema v1 release's code (found v{schema.SCHEMA_VERSION})")
    path.unlink(missing_ok=True)
    with open_journal(path) as j:
        write_all(j)
        j.db.read("VACUUM")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
