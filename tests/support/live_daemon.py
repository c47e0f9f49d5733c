"""The real daemon in live mode against a ``SimExchange``: a journal seeded with an owned
long, the process started with its output in a log file, and its ticks counted by the
STATUS= lines it sends."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from support.waiting import wait_until
from trendbotd.core.client_ids import make_client_id
from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.journal.store import open_journal
from trendbotd.sim import SimExchange

DAEMON = [sys.executable, "-m", "trendbotd"]
DAY_MS = 86_400_000


def seed_owned_long(
    directory: Path,
    sim: SimExchange,
    *,
    instance: str,
    symbol: str,
    amount: Decimal,
    price: Decimal,
    stop: Decimal,
) -> None:
    """A long on the exchange that the journal knows (a filled entry with its planned stop),
    in ``directory/state``. The next day's candles are decided already: no strategy exit or
    entry muddles the test."""
    sim.account.set_position(symbol, amount, price)
    now = int(time.time() * 1000)
    candle = now - now % 3_600_000 - 3_600_000
    (directory / "state").mkdir()
    with open_journal(directory / "state" / f"{instance}.db") as journal:
        cid = make_client_id(
            instance=instance, symbol=symbol, candle_time_ms=candle, seq=0, purpose=Purpose.ENTRY
        )
        journal.orders.add_intent(
            Intent(
                cid, symbol, Side.BUY, OrderType.MARKET, amount, Purpose.ENTRY, candle, 0,
                IntentState.FILLED, now, now, protective_stop=stop, filled=amount,
                average_price=price, attempts=1, sent_ms=now,
            )
        )  # fmt: skip
        journal.account.set_expected_position(symbol, amount, now_ms=now)
        journal.controls.set_decided_candle(symbol, now + DAY_MS, now_ms=now)


def start_live(
    config: Path, *, cwd: Path, log: Path, env: Mapping[str, str]
) -> subprocess.Popen[str]:
    """``trendbotd run --foreground``, stdout and stderr into ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [*DAEMON, "run", "--foreground", "--config", str(config)],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def status_texts(listener: Any, after: int = 0) -> list[str]:
    """The STATUS= texts the daemon sent after message index ``after`` (one a tick)."""
    return [m.fields["STATUS"] for m in listener.messages()[after:] if "STATUS" in m.fields]


def wait_ticks(
    listener: Any,
    proc: subprocess.Popen[str],
    *,
    after: int,
    ticks: int,
) -> None:
    """Until ``ticks`` more STATUS= lines arrived after index ``after``; the daemon lives."""
    assert wait_until(
        lambda: len(status_texts(listener, after)) >= ticks or proc.poll() is not None,
        timeout=30,
        interval=0.05,
    )
    assert proc.poll() is None, proc.returncode
