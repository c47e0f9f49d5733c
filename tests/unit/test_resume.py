"""``trendbotd resume``: the pure plan, the journal transaction, and the command in-process."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from trendbotd import cli
from trendbotd.config import RiskConfig
from trendbotd.core import guards
from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import DailyStart, ModeState, PositionView, Purpose, TradingMode
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.resume import ResumeFacts, plan_resume, position_differences
from trendbotd.journal.store import open_journal

SYM = "BTC/USDT:USDT"
DAY = guards.DAY_MS
NOW = 20_000 * DAY + 13 * 3_600_000  # 13:00 UTC
TODAY = NOW // DAY
HAND = f"{SYM}: position 0.01 opened outside the bot (the journal expects none)"
D = Decimal


def facts(**changes: object) -> ResumeFacts:
    base = ResumeFacts(
        mode=ModeState(TradingMode.NORMAL, "", 0),
        daily_start=DailyStart(TODAY, D(10000)),
        decisions=(),
        last_resume_ms=None,
        last_sync=(NOW - 1000, ()),
        expected={},
        daemon_running=True,
        config_reduce_only=False,
        config_source="/etc/trendbotd/trendbotd.toml",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def daily_block(at_ms: int) -> tuple[int, str, str, bool, str]:
    return (at_ms, SYM, "daily_loss", False, "daily loss 6.00% reached the limit 5.00%")


REDUCE_ONLY = ModeState(TradingMode.REDUCE_ONLY, HAND, NOW - 60_000)


@pytest.mark.parametrize(
    ("case", "set_normal", "rebase"),
    [
        (facts(), False, False),
        (facts(mode=REDUCE_ONLY), True, False),
        (facts(mode=ModeState(TradingMode.HALTED, "halted by hand", 1)), True, False),
        (facts(decisions=[daily_block(NOW - 3_600_000)]), False, True),
        (facts(mode=REDUCE_ONLY, decisions=[daily_block(NOW - 5)]), True, True),
        # yesterday's block ended with the day; one before the last resume was dealt with
        (facts(decisions=[daily_block(TODAY * DAY - 1)]), False, False),
        (facts(decisions=[daily_block(NOW - 10)], last_resume_ms=NOW - 5), False, False),
        # another guard's block, or an allowed decision, is not the kill switch
        (facts(decisions=[(NOW - 5, SYM, "max_leverage", False, "too much")]), False, False),
        (facts(decisions=[(NOW - 5, SYM, "daily_loss", True, "")]), False, False),
    ],
)
def test_what_a_resume_changes(case: ResumeFacts, set_normal: bool, rebase: bool) -> None:
    plan = plan_resume(case, operator="alice", note="", now_ms=NOW)
    assert (plan.set_normal, plan.rebase_daily_start) == (set_normal, rebase)
    assert plan.changes is (set_normal or rebase)
    assert "\n" not in plan.summary
    if not plan.changes:
        assert plan.summary.startswith("already normal: nothing to resume")


def test_the_reason_names_the_operator_the_note_and_what_was_lifted() -> None:
    plan = plan_resume(
        facts(mode=REDUCE_ONLY, decisions=[daily_block(NOW - 5)]),
        operator="alice",
        note="closed the stray position by hand",
        now_ms=NOW,
    )
    assert plan.reason == (
        f"resumed by alice: closed the stray position by hand; was reduce_only: {HAND}; "
        "daily loss counted afresh"
    )
    assert plan.summary.startswith(f"resumed: reduce_only -> normal (was reduce_only: {HAND})")
    assert "day start 10000 dropped" in plan.summary
    assert plan.summary.endswith("takes effect at the daemon's next tick")
    assert plan.notes == ()


def test_notes_say_what_still_keeps_it_from_trading() -> None:
    seen = PositionView(SYM, D("0.01"), D(30000), None, None, NOW - 1000)
    plan = plan_resume(
        facts(
            mode=REDUCE_ONLY,
            last_sync=(NOW - 1000, [seen]),
            config_reduce_only=True,
            daemon_running=False,
        ),
        operator="alice",
        note="",
        now_ms=NOW,
    )
    assert plan.set_normal
    assert plan.summary.endswith("takes effect when the daemon starts")
    config_note, sync_note = plan.notes
    assert "[risk] reduce_only = true in /etc/trendbotd/trendbotd.toml" in config_note
    assert f"still saw {SYM} 0.01 on the exchange where the journal expects 0" in sync_note
    assert "goes back to reduce-only" in sync_note
    # the switch in the config is worth a note even when the journal has nothing to lift
    already = plan_resume(facts(config_reduce_only=True), operator="a", note="", now_ms=NOW)
    assert not already.changes
    assert len(already.notes) == 1


def test_position_differences() -> None:
    def view(amount: str) -> PositionView:
        return PositionView(SYM, D(amount), D(1), None, None, 0)

    assert position_differences(None, {SYM: D(1)}) == []
    assert position_differences((0, [view("0.5")]), {SYM: D("0.5")}) == []
    assert position_differences((0, []), {SYM: D("0.5")}) == [
        f"{SYM} 0 on the exchange where the journal expects 0.5"
    ]
    assert position_differences((0, [view("-0.2")]), {SYM: D("0.5")}) == [
        f"{SYM} -0.2 on the exchange where the journal expects 0.5"
    ]


def test_a_journalled_resume_lets_the_next_tick_rebase_the_day(tmp_path: Path) -> None:
    """After the resume the engine's own daily roll starts the day afresh at the equity it
    sees, and the daily-loss guard lets the next entry through."""
    with open_journal(tmp_path / "j.db") as journal:
        journal.controls.set_mode(TradingMode.REDUCE_ONLY, reason=HAND, now_ms=NOW - 10)
        journal.controls.set_daily_start(DailyStart(TODAY, D(10000)), now_ms=NOW - 10)
        journal.controls.resume(reason="resumed by alice", now_ms=NOW, rebase_daily_start=True)
        assert journal.controls.mode() == ModeState(TradingMode.NORMAL, "resumed by alice", NOW)
        assert journal.controls.last_resume_ms() == NOW
        assert journal.controls.daily_start() is None
        equity = D(9000)  # 10% down on the day, above the 5% limit
        start = guards.roll_daily_start(
            journal.controls.daily_start(), now_ms=NOW + 1, equity=equity
        )
    assert start == DailyStart(TODAY, equity)
    entry = guards.ProposedOrder(SYM, Side.BUY, OrderType.MARKET, D("0.01"), Purpose.ENTRY, D(1))
    limit = RiskConfig().daily_loss_limit
    assert guards.daily_loss(entry, equity=equity, start=start, limit=limit).allowed
    old_start = DailyStart(TODAY, D(10000))
    assert not guards.daily_loss(entry, equity=equity, start=old_start, limit=limit).allowed


def test_a_resume_without_rebase_keeps_the_day_start(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.controls.set_daily_start(DailyStart(TODAY, D(10000)), now_ms=NOW - 10)
        journal.controls.resume(reason="resumed by alice", now_ms=NOW, rebase_daily_start=False)
        assert journal.controls.daily_start() == DailyStart(TODAY, D(10000))


# ----- the command -----


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[instance]\nname = "unit"\nruntime_dir = "{tmp_path / "run"}"\n'
        f'state_dir = "{tmp_path / "lib"}"\n{extra}'
    )
    return path


def _journal_path(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir(exist_ok=True)
    return tmp_path / "lib" / "unit.db"


def test_resume_command_lifts_reduce_only_then_says_already_normal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    config = _config(tmp_path)
    with open_journal(_journal_path(tmp_path)) as journal:
        journal.controls.set_mode(TradingMode.REDUCE_ONLY, reason=HAND, now_ms=NOW)
    argv = ["resume", "--config", str(config), "--reason", "closed it\nby hand"]
    assert cli.main(argv) == ExitCode.OK
    out, err = capsys.readouterr()
    assert out == (
        f"trendbotd: unit: resumed: reduce_only -> normal (was reduce_only: {HAND}); "
        "takes effect when the daemon starts\n"
    )
    assert err == ""
    with open_journal(_journal_path(tmp_path), read_only=True) as journal:
        mode = journal.controls.mode()
    assert mode.mode is TradingMode.NORMAL
    assert mode.reason == f"resumed by alice: closed it by hand; was reduce_only: {HAND}"

    assert cli.main(["resume", "--config", str(config)]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert out.startswith("trendbotd: unit: already normal: nothing to resume")
    assert err == ""


def test_resume_command_with_the_config_switch_on_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "[risk]\nreduce_only = true\n")
    open_journal(_journal_path(tmp_path)).close()
    assert cli.main(["resume", "--config", str(config)]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert "already normal" in out
    assert err.strip() == (
        f"trendbotd: note: [risk] reduce_only = true in {config} still keeps it reduce-only "
        "(exits only): set it to false and reload (systemctl reload, or SIGHUP)"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no journal for this instance (wrong --config, or the daemon has never run"),
        (b"not a database at all" * 100, "journal is corrupt or not a trendbotd journal"),
    ],
)
def test_resume_command_without_a_usable_journal_is_one_line_and_65(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, expected: str
) -> None:
    config = _config(tmp_path)
    path = _journal_path(tmp_path)
    if content is not None:
        path.write_bytes(content)
    assert cli.main(["resume", "--config", str(config)]) == ExitCode.DATA_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"trendbotd: {path}: ")
    assert expected in lines[0]
    if content is None:
        assert not path.exists()  # resume never creates a journal
