"""``trendbotd halt`` / ``flatten``: the pure plan, the journal records, and the commands'
argument checks in-process (the daemon and the exchange side: tests/integration/
test_operator_commands.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trendbotd import cli
from trendbotd.core.records import ModeState, TradingMode
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.operator_requests import (
    FlattenRequest,
    check_symbols,
    finish_flatten,
    flatten_status_line,
    halt,
    halt_reason,
    last_flatten_outcome,
    pending_flatten,
    plan_halt,
    request_flatten,
)
from trendbotd.journal.store import open_journal

SYM = "BTC/USDT:USDT"
NOW = 1_700_000_000_000


def _request(rid: str = "1-2", symbols: tuple[str, ...] | None = None) -> FlattenRequest:
    return FlattenRequest(
        id=rid, symbols=symbols, operator="alice", note="exchange news", at_ms=NOW
    )


def test_a_request_round_trips_and_names_who_and_why() -> None:
    for request in (_request(), _request(symbols=(SYM,))):
        assert FlattenRequest.from_json(request.to_json()) == request
    assert _request().reason == "flatten all symbols requested by alice: exchange news"
    assert _request(symbols=(SYM,)).resolve([SYM, "ETH/USDT:USDT"]) == (SYM,)
    assert _request().resolve([SYM, "ETH/USDT:USDT"]) == (SYM, "ETH/USDT:USDT")
    assert halt_reason("bob", "") == "halted by bob"


@pytest.mark.parametrize(
    ("previous", "set_halted", "summary_starts"),
    [
        (ModeState(TradingMode.NORMAL, "", 0), True, "halted: no new entries"),
        (ModeState(TradingMode.REDUCE_ONLY, "hand", 1), True, "halted: no new entries"),
        (ModeState(TradingMode.HALTED, "halted by bob", 1), False, "already halted (halted by"),
    ],
)
def test_plan_halt(previous: ModeState, set_halted: bool, summary_starts: str) -> None:
    plan = plan_halt(previous, running=False)
    assert plan.set_halted is set_halted
    assert plan.summary.startswith(summary_starts)


def test_check_symbols_names_the_unknown_ones() -> None:
    assert check_symbols([SYM, "DOGE/USDT:USDT"], [SYM]) == ["DOGE/USDT:USDT"]


def test_halt_keeps_the_first_reason(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        assert halt(journal, reason="halted by a", now_ms=NOW, running=True).set_halted
        assert not halt(journal, reason="halted by b", now_ms=NOW + 1, running=True).set_halted
        assert journal.controls.mode() == ModeState(TradingMode.HALTED, "halted by a", NOW)


def test_a_flatten_request_halts_with_it_and_is_pending_until_done(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        assert pending_flatten(journal) is None
        assert flatten_status_line(journal) is None
        request_flatten(journal, _request("1-1"))
        assert flatten_status_line(journal) == (
            "flatten:   pending since 2023-11-14 22:13:20 UTC "
            "(flatten all symbols requested by alice: exchange news)"
        )
        assert journal.controls.mode() == ModeState(TradingMode.HALTED, _request().reason, NOW)
        assert pending_flatten(journal) == _request("1-1")
        finish_flatten(journal, _request("1-1"), "flat: 1 position(s) closed", now_ms=NOW + 5)
        assert pending_flatten(journal) is None
        assert last_flatten_outcome(journal) == "flat: 1 position(s) closed"
        assert flatten_status_line(journal) == "flatten:   last one flat: 1 position(s) closed"
        # a second (duplicate) request is pending again; an existing halt keeps its reason
        journal.controls.set_mode(TradingMode.HALTED, reason="halted by bob", now_ms=NOW + 6)
        request_flatten(journal, _request("1-2"))
        assert pending_flatten(journal) == _request("1-2")
        assert journal.controls.mode().reason == "halted by bob"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[instance]\nname = "unit"\nruntime_dir = "{tmp_path / "run"}"\n'
        f'state_dir = "{tmp_path / "lib"}"\n[trading]\nsymbols = ["{SYM}"]\n'
    )
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["flatten"],  # neither --symbol nor --all
        ["flatten", "--all", "--symbol", SYM],
        ["flatten", "--symbol", "DOGE/USDT:USDT"],  # not traded by this instance
        ["halt", "--bogus"],
    ],
)
def test_bad_arguments_exit_64_and_touch_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert cli.main([*args, "--config", str(_config(tmp_path))]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "lib").exists()


def test_halt_without_a_daemon_journals_who_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    config = _config(tmp_path)
    (tmp_path / "lib").mkdir()
    open_journal(tmp_path / "lib" / "unit.db").close()
    argv = ["halt", "--config", str(config), "--reason", "exchange\nnews"]
    assert cli.main(argv) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("trendbotd: unit: halted: no new entries, stops and exits still ")
    assert "the daemon is not running" in out
    with open_journal(tmp_path / "lib" / "unit.db", read_only=True) as journal:
        assert journal.controls.mode().mode is TradingMode.HALTED
        assert journal.controls.mode().reason == "halted by alice: exchange news"
    assert cli.main(["halt", "--config", str(config)]) == ExitCode.OK
    assert "already halted (halted by alice: exchange news)" in capsys.readouterr().out
    # resume lifts it
    assert cli.main(["resume", "--config", str(config)]) == ExitCode.OK
    with open_journal(tmp_path / "lib" / "unit.db", read_only=True) as journal:
        assert journal.controls.mode().mode is TradingMode.NORMAL


def test_halt_without_a_journal_is_65(tmp_path: Path) -> None:
    assert cli.main(["halt", "--config", str(_config(tmp_path))]) == ExitCode.DATA_ERROR
