"""Trading events from the real daemon (``trendbotd run``, live mode, real ccxt) against the
simulated exchange, delivered to a local fake webhook on 127.0.0.1.

One daemon plays a whole story: it starts owning a long whose stop is gone and the
exchange refuses the new stop (one critical ``stop.failed``, the position closed); a
position is then opened behind its back (one critical ``position.unprotected``,
reduce-only entered, then left when the operator resumes); the exchange clock jumps
(orders refused, then allowed again); the exchange becomes unreachable for longer than
``[alerts] unreachable_alert_s`` and comes back (one alert each way). No alert carries a
secret. Rejected credentials and a corrupt journal each give one critical alert."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alert_daemon import one
from alert_receivers import Receiver, serve
from support.daemon_config import live_config
from support.daemon_harness import REAL_CMD, NotifyListener, clean_env, wait_until
from support.live_daemon import seed_owned_long, start_live, wait_ticks

from trendbotd.core.domain import Side
from trendbotd.core.records import IntentState, TradingMode
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.faults import Fault
from trendbotd.sim.main import write_credentials

SYMBOL = "BTC/USDT:USDT"
PRICE = Decimal(50000)
AMOUNT = Decimal("0.010")
STOP = Decimal(45000)
HOOK_PATH = "/hook/s3cretTradingHook7d1e"
ALGO = "/fapi/v1/algoOrder"


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=7)) as s:
        s.account.set_price(SYMBOL, PRICE)  # pinned: no stop triggers by chance
        yield s


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def _config(tmp_path: Path, sim: SimExchange, webhook: Receiver) -> Path:
    hook = tmp_path / "hook.secret"
    hook.write_text(f'url = "http://127.0.0.1:{webhook.port}{HOOK_PATH}"\n')
    hook.chmod(stat.S_IRUSR | stat.S_IWUSR)
    alerts = f"""
        [alerts]
        retry_base_s = 0.2
        retry_max_s = 0.5
        coalesce_window_s = 0
        unreachable_alert_s = 1.5

        [alerts.channels.hook]
        kind = "webhook"
        min_severity = "info"
        secret_file = "{hook}"
        """
    return live_config(
        tmp_path,
        sim,
        name="tradealerts",
        symbol=SYMBOL,
        exchange_extra="request_timeout_s = 2",
        extra=alerts,
    )


def _own_a_long_without_its_stop(tmp_path: Path, sim: SimExchange) -> None:
    """A long the journal knows (a filled entry with its planned stop), no stop on the
    exchange: the startup sync must put one back. No strategy decision muddles the story:
    this hour and the next are decided."""
    seed_owned_long(
        tmp_path, sim, instance="tradealerts", symbol=SYMBOL, amount=AMOUNT, price=PRICE, stop=STOP
    )


def _events(bodies: list[dict[str, Any]], *, after: int = 0) -> list[str]:
    return [b["event"] for b in bodies[after:]]


def _ticks(listener: NotifyListener, proc: subprocess.Popen[str], n: int) -> None:
    """Until ``n`` more STATUS= lines (one a tick) arrived: time for a repeat to show."""
    wait_ticks(listener, proc, after=len(listener.messages()), ticks=n)


def test_trading_events_arrive_once_with_severity_and_no_secret(
    sim: SimExchange, webhook: Receiver, tmp_path: Path, notify_listener: NotifyListener
) -> None:
    _own_a_long_without_its_stop(tmp_path, sim)
    # the exchange refuses the stop the startup sync places (once: the close goes through)
    sim.faults.add(Fault(method="POST", path=ALGO, binance_code=-1111, http_status=400))
    log = tmp_path / "daemon.log"
    config = _config(tmp_path, sim, webhook)
    proc = start_live(
        config, cwd=tmp_path, log=log, env=clean_env(NOTIFY_SOCKET=notify_listener.path)
    )
    try:
        notify_listener.wait_key("READY", "1", timeout=60, proc=proc)

        # (1) the stop could not be placed: critical, once; the owned long was closed
        bodies = webhook.wait_for(lambda b: "position.closed" in _events(b))
        failed = one(bodies, "stop.failed")
        assert failed["severity"] == "critical"
        assert failed["fields"]["symbol"] == SYMBOL
        assert failed["fields"]["state"] == IntentState.REJECTED.value
        assert "-1111" in failed["fields"]["error"] or "recision" in failed["fields"]["error"]
        gap = one(bodies, "position.unprotected")
        assert gap["severity"] == "critical" and gap["fields"]["owned"] == "true"
        assert gap["fields"]["action"] == f"stop rejected at {STOP}"
        closed = one(bodies, "position.closed")
        assert closed["fields"]["purpose"] == "flatten"
        assert closed["fields"]["amount"] == str(AMOUNT)
        assert sim.account.position(SYMBOL).amount == 0
        assert "stop.placed" not in _events(bodies)

        # (3) a position opened behind the daemon's back: found once, protected, reduce-only
        mark = len(webhook.bodies())
        sim.account.set_position(SYMBOL, -AMOUNT, PRICE)
        bodies = webhook.wait_for(
            lambda b: (
                {"position.unprotected", "stop.placed", "mode.reduce_only_entered"}
                <= set(_events(b, after=mark))
            )
        )
        _ticks(notify_listener, proc, 4)  # more syncs: no repeat
        bodies = webhook.bodies()[mark:]
        placed = one(bodies, "stop.placed")
        assert placed["severity"] == "info" and placed["fields"]["side"] == Side.BUY.value
        found = one(bodies, "position.unprotected")
        assert found["severity"] == "critical"
        assert found["fields"] == {
            "symbol": SYMBOL,
            "position": str(-AMOUNT),
            "uncovered": str(AMOUNT),
            "owned": "false",
            "action": f"stop placed at {placed['fields']['trigger']}",
        }
        entered = one(bodies, "mode.reduce_only_entered")
        assert entered["severity"] == "warning"
        assert entered["fields"]["mode"] == TradingMode.REDUCE_ONLY.value

        # closed by hand, the reason no longer holds; the operator resumes: mode left, once
        sim.account.set_position(SYMBOL, Decimal(0), PRICE)
        assert wait_until(lambda: "mode.reason_resolved" in log.read_text(), timeout=30)
        mark = len(webhook.bodies())
        resumed = subprocess.run(
            [*REAL_CMD, "resume", "--config", str(config), "--reason", "closed by hand"],
            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        webhook.wait_for(lambda b: "mode.reduce_only_left" in _events(b, after=mark))
        _ticks(notify_listener, proc, 3)
        left = [b for b in webhook.bodies()[mark:] if b["event"].startswith("mode.")]
        assert [b["event"] for b in left] == ["mode.reduce_only_left"]
        assert left[0]["severity"] == "info" and left[0]["fields"]["mode"] == "normal"

        # the exchange clock jumps: orders refused, then allowed again, one alert each
        mark = len(webhook.bodies())
        sim.set_clock_skew_ms(20_000)
        webhook.wait_for(lambda b: "clock.skew_refusing" in _events(b, after=mark))
        _ticks(notify_listener, proc, 3)
        sim.set_clock_skew_ms(0)
        webhook.wait_for(lambda b: "clock.skew_cleared" in _events(b, after=mark), timeout=30)
        assert _events(webhook.bodies(), after=mark) == [
            "clock.skew_refusing",
            "clock.skew_cleared",
        ]
        refusing = one(webhook.bodies()[mark:], "clock.skew_refusing")
        assert refusing["severity"] == "error"

        # (4) the exchange unreachable (every connection dropped) beyond 1.5 s, then back
        mark = len(webhook.bodies())
        sim.faults.add(Fault(kind="drop_before", times=None))
        down_at = time.monotonic()
        webhook.wait_for(lambda b: "exchange.unreachable" in _events(b, after=mark), timeout=30)
        assert time.monotonic() - down_at >= 1.5
        _ticks(notify_listener, proc, 3)  # still down: no repeat
        sim.faults.clear()
        webhook.wait_for(lambda b: "exchange.back" in _events(b, after=mark), timeout=30)
        _ticks(notify_listener, proc, 3)
        bodies = webhook.bodies()[mark:]
        assert _events(bodies) == ["exchange.unreachable", "exchange.back"]
        assert bodies[0]["severity"] == "error" and bodies[1]["severity"] == "info"
        assert float(bodies[1]["fields"]["down_s"]) >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    bodies = webhook.bodies()
    assert len({b["id"] for b in bodies}) == len(bodies)
    raw = b"".join(r.raw for r in webhook.received).decode()
    for secret in (HOOK_PATH, "s3cretTradingHook", sim.api_secret, sim.api_key):
        assert secret not in raw
        assert secret not in text
    # critical ones are in the log at CRITICAL for journalctl -p crit
    assert "CRITICAL" in text and "alert.stop.failed" in text


def _run_to_exit(config: Path, tmp_path: Path, log: Path) -> int:
    with log.open("w") as out:
        proc = subprocess.run(
            [*REAL_CMD, "run", "--foreground", "--config", str(config)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
    return proc.returncode


@pytest.mark.parametrize("fault", ["credentials", "journal"])
def test_rejected_credentials_and_a_corrupt_journal_alert_critically(
    fault: str, sim: SimExchange, webhook: Receiver, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim, webhook)
    if fault == "credentials":
        # a key the exchange does not know: -2015 on the first signed request
        write_credentials(tmp_path / "creds.toml", "WrongKey" + sim.api_key[8:], sim.api_secret)
        event, code = "credentials.rejected", 77
    else:
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "tradealerts.db").write_bytes(b"not a database" * 512)
        event, code = "journal.error", 65
    log = tmp_path / "daemon.log"
    assert _run_to_exit(config, tmp_path, log) == code, log.read_text()[-3000:]
    bodies = webhook.wait_for(lambda b: "daemon.failed" in _events(b))
    alert = one(bodies, event)
    assert alert["severity"] == "critical"
    assert alert["fields"]["exit_code"] == str(code)
    assert _events(bodies).index(event) < _events(bodies).index("daemon.failed")
    raw = b"".join(r.raw for r in webhook.received).decode()
    text = log.read_text()
    for secret in (HOOK_PATH, sim.api_secret):
        assert secret not in raw
        assert secret not in text
