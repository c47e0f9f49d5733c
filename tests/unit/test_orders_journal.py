from __future__ import annotations

import os
import sqlite3
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import (
    DailyStart,
    Intent,
    IntentState,
    IntentUpdate,
    PositionView,
    Purpose,
    TradingMode,
)
from trendbotd.errors import JournalError, JournalIOError
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from trendbotd.journal.sqlite_db import connect_db
from trendbotd.journal.store import Journal, open_journal

SYM = "BTC/USDT:USDT"


def intent(cid: str = "c1", **kw: object) -> Intent:
    values: dict[str, object] = {
        "client_order_id": cid,
        "symbol": SYM,
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "amount": Decimal("0.010"),
        "purpose": Purpose.ENTRY,
        "candle_time_ms": 3_600_000,
        "seq": 0,
        "state": IntentState.PENDING,
        "created_ms": 1000,
        "updated_ms": 1000,
        "protective_stop": Decimal("49000.5"),
    }
    values.update(kw)
    return Intent(**values)  # type: ignore[arg-type]


def filled(journal: Journal, cid: str, amount: Decimal, *, now_ms: int) -> Intent:
    """Books ``cid`` as filled up to ``amount``, as a resolved order report would."""
    return journal.orders.update_intent(
        cid, IntentUpdate(IntentState.FILLED, filled=amount), now_ms=now_ms
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
def journal(path: Path) -> Journal:
    j = open_journal(path)
    yield j  # type: ignore[misc]
    j.close()


# ----- creation and durability settings -----


def test_new_journal_is_private_wal_and_versioned(journal: Journal, path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert journal.schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_connection_uses_full_sync(journal: Journal) -> None:
    # synchronous is per connection: read it on the journal's own connection.
    assert journal.db.read("PRAGMA synchronous")[0][0] == 2  # FULL


def test_committed_intents_survive_reopen(path: Path) -> None:
    with open_journal(path) as j:
        j.orders.add_intent(intent())
        j.orders.mark_sent("c1", now_ms=2000)
    with open_journal(path) as j:
        got = j.orders.get_intent("c1")
    assert got is not None
    assert got.state is IntentState.SENT
    assert got.attempts == 1
    assert got.sent_ms == 2000
    assert got.amount == Decimal("0.010")  # exact decimal text
    assert got.protective_stop == Decimal("49000.5")


def test_empty_file_is_initialised(path: Path) -> None:
    path.write_bytes(b"")
    with open_journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION


# ----- refusing what is not a healthy journal, without touching it -----


def _assert_refused(path: Path, match: str) -> JournalError:
    before = path.read_bytes()
    with pytest.raises(JournalError, match=match) as err:
        open_journal(path)
    assert path.read_bytes() == before  # never recreated, never rewritten
    return err.value


def test_garbage_file_is_refused_and_left_alone(path: Path) -> None:
    path.write_bytes(b"this is not sqlite\n" * 300)
    error = _assert_refused(path, "corrupt or not a trendbotd journal")
    assert error.exit_code == ExitCode.DATA_ERROR
    assert "never recreated" in str(error)
    assert not Path(f"{path}-wal").exists()


def test_truncated_journal_is_refused(path: Path) -> None:
    with open_journal(path) as j:
        for n in range(300):
            j.orders.add_intent(intent(f"c{n}", seq=n, last_error="x" * 300))
    size = path.stat().st_size
    assert size > 8192
    with path.open("r+b") as f:
        f.truncate(size // 2)
    error = _assert_refused(path, "corrupt|integrity")
    assert error.exit_code == ExitCode.DATA_ERROR


def test_foreign_sqlite_database_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE photos (id INTEGER)")
    _assert_refused(path, "not a trendbotd journal")


def test_journal_from_a_newer_schema_is_refused(path: Path) -> None:
    open_journal(path).close()
    with sqlite3.connect(path) as other:
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    error = _assert_refused(path, f"schema v{SCHEMA_VERSION + 1} is newer")
    assert error.exit_code == ExitCode.DATA_ERROR


def test_directory_in_place_of_the_journal_is_refused(path: Path) -> None:
    path.mkdir()
    with pytest.raises(JournalError, match="not a regular file"):
        open_journal(path)


def test_missing_directory_is_an_io_error(tmp_path: Path) -> None:
    with pytest.raises(JournalIOError) as err:
        open_journal(tmp_path / "missing" / "bot.db")
    assert err.value.exit_code == ExitCode.IO_ERROR


# ----- migrations -----


def test_migrations_run_in_order_and_keep_data(path: Path) -> None:
    with open_journal(path) as j:
        j.orders.add_intent(intent())
    v2 = ("ALTER TABLE intents ADD COLUMN note TEXT", "CREATE TABLE extra (x INTEGER)")
    with Journal(connect_db(path, migrations=(*MIGRATIONS, v2))) as j:
        assert j.schema_version == SCHEMA_VERSION + 1
        assert j.orders.get_intent("c1") is not None
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM extra").fetchone()[0] == 0


def test_failed_migration_rolls_back(path: Path) -> None:
    open_journal(path).close()
    broken = ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL")
    with pytest.raises(JournalError):
        connect_db(path, migrations=(*MIGRATIONS, broken))
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master")}
    assert "half" not in tables


# ----- intents, fills, expected positions -----


def test_same_intent_twice_is_not_a_second_row(journal: Journal) -> None:
    first, created = journal.orders.add_intent(intent())
    assert created
    journal.orders.mark_sent("c1", now_ms=1500)
    again, created = journal.orders.add_intent(intent(state=IntentState.PENDING))
    assert not created
    assert again.state is IntentState.SENT  # the stored one, unchanged
    assert first.client_order_id == again.client_order_id


def test_same_decision_slot_cannot_hold_two_ids(journal: Journal) -> None:
    journal.orders.add_intent(intent("c1"))
    with pytest.raises(JournalError):
        journal.orders.add_intent(intent("other-id"))  # same symbol, candle, purpose, seq


def test_fill_increase_is_booked_with_the_expected_position(journal: Journal) -> None:
    journal.orders.add_intent(intent())
    journal.orders.update_intent(
        "c1", IntentUpdate(IntentState.ACKED, "42", Decimal("0.004"), Decimal(50000)), now_ms=2000
    )
    filled(journal, "c1", Decimal("0.010"), now_ms=3000)
    # a later report with a lower fill (e.g. an ACK reply adopted late) never unbooks
    final = filled(journal, "c1", Decimal(0), now_ms=4000)
    assert final.filled == Decimal("0.010")
    assert final.exchange_order_id == "42"
    assert final.average_price == Decimal(50000)
    assert [f[2] for f in journal.orders.fills("c1")] == [Decimal("0.004"), Decimal("0.006")]
    assert journal.account.expected_positions() == {SYM: Decimal("0.010")}
    journal.orders.add_intent(
        intent("c2", side=Side.SELL, purpose=Purpose.EXIT, reduce_only=True, protective_stop=None)
    )
    filled(journal, "c2", Decimal("0.010"), now_ms=5000)
    assert journal.account.expected_positions() == {}


def test_reduce_only_fills_never_flip_the_expected_position(journal: Journal) -> None:
    journal.orders.add_intent(intent())
    filled(journal, "c1", Decimal("0.010"), now_ms=1)
    journal.orders.add_intent(
        intent(
            "stop",
            side=Side.SELL,
            type=OrderType.STOP_MARKET,
            purpose=Purpose.STOP,
            amount=Decimal("0.5"),
            reduce_only=True,
            protective_stop=None,
        )
    )
    filled(journal, "stop", Decimal("0.5"), now_ms=2)
    assert journal.account.expected_positions() == {}


def test_terminal_states_do_not_regress(journal: Journal) -> None:
    journal.orders.add_intent(intent())
    filled(journal, "c1", Decimal("0.010"), now_ms=1)
    stale = journal.orders.update_intent("c1", IntentUpdate(IntentState.ACKED), now_ms=2)
    assert stale.state is IntentState.FILLED
    journal.orders.add_intent(intent("c2", seq=1))
    journal.orders.update_intent("c2", IntentUpdate(IntentState.ABANDONED), now_ms=3)
    found = filled(journal, "c2", Decimal(1), now_ms=4)
    assert found.state is IntentState.FILLED  # an abandoned intent found later is adopted


def test_non_final_and_open_intents(journal: Journal) -> None:
    journal.orders.add_intent(intent("a", seq=0))
    journal.orders.add_intent(intent("b", seq=1, created_ms=1001))
    journal.orders.add_intent(
        intent("s", seq=0, purpose=Purpose.STOP, type=OrderType.STOP_MARKET, created_ms=1002)
    )
    journal.orders.update_intent(
        "a", IntentUpdate(IntentState.REJECTED, last_error="-2019"), now_ms=1
    )
    journal.orders.update_intent("s", IntentUpdate(IntentState.ACKED), now_ms=1)
    assert [i.client_order_id for i in journal.orders.non_final_intents()] == ["b", "s"]
    assert [i.client_order_id for i in journal.orders.open_intents(SYM, purpose=Purpose.STOP)] == [
        "s"
    ]
    assert journal.orders.get_intent("a").last_error == "-2019"  # type: ignore[union-attr]
    assert journal.orders.next_seq(SYM, 3_600_000, Purpose.ENTRY) == 2
    assert journal.orders.next_seq(SYM, 3_600_000, Purpose.EXIT) == 0
    assert [i.client_order_id for i in journal.orders.intents_since(1001)] == ["b", "s"]


def test_latest_stop_prices(journal: Journal) -> None:
    journal.orders.add_intent(intent("e1"))
    assert journal.orders.latest_stop_prices() == {}  # unfilled entries do not count
    filled(journal, "e1", Decimal("0.010"), now_ms=1)
    assert journal.orders.latest_stop_prices() == {SYM: Decimal("49000.5")}
    journal.orders.add_intent(
        intent(
            "s1",
            purpose=Purpose.STOP,
            type=OrderType.STOP_MARKET,
            stop_price=Decimal("48000"),
            protective_stop=None,
            created_ms=2000,
        )
    )
    assert journal.orders.latest_stop_prices() == {SYM: Decimal(48000)}


def test_update_of_unknown_intent_is_an_error(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no intent"):
        journal.orders.update_intent("nope", IntentUpdate(IntentState.FILLED), now_ms=1)


# ----- syncs, guards, state -----


def test_sync_snapshots_latest_wins_even_when_flat(journal: Journal) -> None:
    assert journal.account.last_sync() is None
    view = PositionView(SYM, Decimal("0.01"), Decimal(50000), Decimal(49000), "stop-1", 0)
    journal.account.record_sync([view], taken_at_ms=10)
    taken, views = journal.account.last_sync()  # type: ignore[misc]
    assert taken == 10
    assert views[0].stop_client_order_id == "stop-1"
    assert views[0].seen_at_ms == 10
    journal.account.record_sync([], taken_at_ms=20)
    assert journal.account.last_sync() == (20, [])
    journal.prune_history(before_ms=15)
    assert journal.account.last_sync() == (20, [])


def test_guard_decisions_and_prune(journal: Journal) -> None:
    journal.decisions.record_guard_decision(
        at_ms=5, symbol=SYM, guard="daily_loss", allowed=False, reason="r"
    )
    journal.decisions.record_guard_decision(
        at_ms=50, symbol=SYM, guard="duplicate_order", allowed=True, reason=""
    )
    assert [g[2] for g in journal.decisions.guard_decisions()] == ["duplicate_order", "daily_loss"]
    journal.prune_history(before_ms=10)
    assert [g[2] for g in journal.decisions.guard_decisions()] == ["duplicate_order"]


def test_instance_state(journal: Journal, path: Path) -> None:
    assert journal.controls.mode().mode is TradingMode.NORMAL
    journal.controls.set_mode(TradingMode.REDUCE_ONLY, reason="size mismatch", now_ms=77)
    journal.controls.set_last_tick(1234)
    journal.controls.set_daily_start(DailyStart(19000, Decimal("10000.50")), now_ms=1)
    journal.close()
    with open_journal(path) as j:
        mode = j.controls.mode()
        assert (mode.mode, mode.reason, mode.since_ms) == (
            TradingMode.REDUCE_ONLY,
            "size mismatch",
            77,
        )
        assert j.controls.last_tick_ms() == 1234
        assert j.controls.daily_start() == DailyStart(19000, Decimal("10000.50"))


# ----- read-only opening for `trendbotd status` -----


def test_read_only_sees_the_live_writer_and_cannot_write(journal: Journal, path: Path) -> None:
    journal.orders.add_intent(intent())
    journal.controls.set_last_tick(999)
    with open_journal(path, read_only=True) as ro:
        assert ro.controls.last_tick_ms() == 999
        assert [i.client_order_id for i in ro.orders.non_final_intents()] == ["c1"]
        with pytest.raises(JournalError, match="read-only"):
            ro.controls.set_last_tick(1)
        journal.controls.set_last_tick(1000)  # the writer keeps going meanwhile
        assert ro.controls.last_tick_ms() == 1000


def test_read_only_of_missing_journal_says_so(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal here"):
        open_journal(tmp_path / "none.db", read_only=True)
    assert not (tmp_path / "none.db").exists()


def test_read_only_refuses_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))
    with pytest.raises(JournalError, match="corrupt"):
        open_journal(path, read_only=True)
