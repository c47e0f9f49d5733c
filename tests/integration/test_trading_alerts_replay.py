"""Alerts of a trade's life from the daemon's real trading stack (TradingRunner in paper
mode: the simulated exchange over real ccxt, a real journal), stepped candle by candle, to
a local fake webhook through the real alert path (outbox, sender, channel): the entry
fills (symbol, side, amount), its stop is placed before it and trailed after it, and the
position is closed with its reason and PnL. Each alert once."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alert_receivers import Receiver, serve
from paper_replay import HOUR_MS, SYMBOL, PaperReplay, replay_config

from trendbotd.alerts.wiring import open_alerts
from trendbotd.config import Config

START_MS = 1_700_000_000_000 // HOUR_MS * HOUR_MS
HOOK_PATH = "/hook/s3cretReplayHook42"


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def _events(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["event"] for b in bodies]


def _config(tmp_path: Path, webhook: Receiver, *, risk: str = "") -> Config:
    hook = tmp_path / "hook.secret"
    hook.write_text(f'url = "http://127.0.0.1:{webhook.port}{HOOK_PATH}"\n')
    hook.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return replay_config(
        tmp_path / "replay",
        data_csv=None,
        regime="trend",
        seed=2,
        risk=risk,
        extra=f"""
[alerts]
# a replay jumps the clock an hour a step: the clock offset goes stale every step and
# the clock gate flaps (one refusing/cleared pair a step); no rate limit hides the rest
rate_limit = 1000
rate_window_s = 1
retry_base_s = 0.2
retry_max_s = 0.5
coalesce_window_s = 0

[alerts.channels.hook]
kind = "webhook"
min_severity = "info"
secret_file = "{hook}"
""",
    )


def test_entry_filled_stop_moved_and_position_closed_arrive_once(
    tmp_path: Path, webhook: Receiver
) -> None:
    config = _config(tmp_path, webhook)
    alerts = open_alerts(config)
    alerts.start_senders()
    try:
        with PaperReplay(config, first_close_ms=START_MS, alerts=alerts.sink) as replay:
            replay.tick()
            for _ in range(1500):
                replay.step()
                seen = set(_events(webhook.bodies()))
                if {"entry.filled", "stop.moved", "position.closed"} <= seen:
                    break
            fills = [f for f in replay.sim.state.fills if f.symbol == "BTCUSDT"]
    finally:
        alerts.close()
    bodies = webhook.wait_for(lambda b: "position.closed" in _events(b), timeout=10)
    events = _events(bodies)
    assert {"entry.filled", "stop.placed", "stop.moved", "position.closed"} <= set(events)
    entry = bodies[events.index("entry.filled")]
    assert entry["severity"] == "info"
    assert entry["fields"]["symbol"] == SYMBOL
    assert entry["fields"]["side"] in ("buy", "sell")
    assert Decimal(entry["fields"]["amount"]) > 0
    assert Decimal(entry["fields"]["amount"]) == fills[0].qty
    # the stop goes out before the entry it protects
    assert events.index("stop.placed") < events.index("entry.filled")
    moved = bodies[events.index("stop.moved")]
    assert Decimal(moved["fields"]["moved_from"]) != Decimal(moved["fields"]["trigger"])
    closed = bodies[events.index("position.closed")]
    assert closed["fields"]["reason"]
    assert closed["fields"]["purpose"] in ("exit", "stop", "exchange")
    assert closed["severity"] == "info"
    assert Decimal(closed["fields"]["amount"]) == Decimal(entry["fields"]["amount"])
    assert "pnl" in closed["fields"] and closed["fields"]["pnl"] != ""  # entry and exit known
    # each alert once: ids unique, one entry alert per filled entry order
    assert len({b["id"] for b in bodies}) == len(bodies)
    cids = [b["fields"]["cid"] for b in bodies if b["event"] == "entry.filled"]
    assert len(cids) == len(set(cids))
    raw = b"".join(r.raw for r in webhook.received).decode()
    assert "s3cretReplayHook" not in raw


def test_daily_loss_limit_alerts_once_per_day_and_symbol(tmp_path: Path, webhook: Receiver) -> None:
    # a limit a single losing trade reaches: later entry signals that day are refused
    config = _config(tmp_path, webhook, risk="daily_loss_limit = 0.0005")
    alerts = open_alerts(config)
    alerts.start_senders()
    try:
        with PaperReplay(config, first_close_ms=START_MS, alerts=alerts.sink) as replay:
            replay.tick()
            more = 30  # steps after the first alert: more refusals, that day and the next
            for _ in range(1500):
                replay.step()
                if "risk.daily_loss_limit" in _events(webhook.bodies()):
                    more -= 1
                    if more == 0:
                        break
            journal = replay.runner.journal
            assert journal is not None
            blocks = [
                d for d in journal.decisions.guard_decisions(limit=100_000)
                if d[2] == "daily_loss" and "reached the limit" in d[4]
            ]  # fmt: skip
    finally:
        alerts.close()
    assert blocks, "no entry was refused by the daily loss limit"
    days = {(at // 86_400_000, symbol) for at, symbol, *_ in blocks}
    bodies = webhook.wait_for(
        lambda b: _events(b).count("risk.daily_loss_limit") >= len(days), timeout=10
    )
    hits = [b for b in bodies if b["event"] == "risk.daily_loss_limit"]
    assert len(hits) == len(days)  # one per UTC day and symbol, however many refusals
    assert all(h["severity"] == "error" and h["fields"]["symbol"] == SYMBOL for h in hits)
    assert "reached the limit" in hits[0]["fields"]["reason"]
