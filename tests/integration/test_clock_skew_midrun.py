"""A clock offset that appears while the daemon runs, not at startup.

The real daemon (``trendbotd run``, live mode) against the simulated exchange over real
ccxt. Mid-run the exchange clock jumps 20 s ahead: the daemon's next signed request gets
-1021, it re-measures, and from then on new orders are refused (STATUS "orders refused:
clock offset ...", one ``clock.orders_refused`` log line however many ticks pass), while
a protective stop that has gone missing is still put back (stamped with the measured
offset, the exchange accepts it). When the clock is right again, orders are allowed
within a tick (``clock.orders_allowed``).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from support.daemon_config import live_config
from support.daemon_harness import NotifyListener, clean_env, wait_until
from support.live_daemon import seed_owned_long, start_live, status_texts, wait_ticks

from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
PRICE = Decimal(50000)
AMOUNT = Decimal("0.010")
STOP = Decimal(45000)
SKEW_MS = 20_000


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=7)) as s:
        s.account.set_price(SYMBOL, PRICE)  # pinned: the stop never triggers by chance
        yield s


def _config(tmp_path: Path, sim: SimExchange, *, exchange_extra: str = "") -> Path:
    return live_config(tmp_path, sim, name="skew", symbol=SYMBOL, exchange_extra=exchange_extra)


def _own_a_long(tmp_path: Path, sim: SimExchange) -> None:
    """A long the journal knows (a filled entry with its planned stop): startup protects it.
    This hour's candles are decided already (the skew moves the daemon's idea of "now" by
    20 s, not by a day)."""
    seed_owned_long(
        tmp_path, sim, instance="skew", symbol=SYMBOL, amount=AMOUNT, price=PRICE, stop=STOP
    )


def _open_stops(sim: SimExchange) -> list[str]:
    return [a.client_algo_id for a in sim.state.algos.values() if a.is_open]


def test_skew_mid_run_refuses_new_orders_keeps_protecting_and_recovers(
    sim: SimExchange, tmp_path: Path, notify_listener: NotifyListener
) -> None:
    _own_a_long(tmp_path, sim)
    log = tmp_path / "daemon.log"
    proc = start_live(
        _config(tmp_path, sim),
        cwd=tmp_path,
        log=log,
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    try:
        notify_listener.wait_key("READY", "1", timeout=60, proc=proc)
        [first_stop] = _open_stops(sim)  # startup protected the long

        sim.set_clock_skew_ms(SKEW_MS)
        skewed_at = len(sim.requests)
        mark = len(notify_listener.messages())
        notify_listener.wait_for(
            lambda m: m.fields.get("STATUS", "").startswith("orders refused: clock offset"),
            after=mark,
            timeout=30,
            proc=proc,
        )
        # The stop disappears from the exchange (canceled by hand, say) while skewed.
        [algo] = [a for a in sim.state.algos.values() if a.is_open]
        sim.desk.cancel_algo(algo)
        assert wait_until(lambda: len(_open_stops(sim)) == 1, timeout=30, interval=0.1), (
            log.read_text()[-3000:]
        )
        [second_stop] = _open_stops(sim)
        assert second_stop != first_stop
        covering = [a for a in sim.state.algos.values() if a.is_open]
        assert covering[0].side == "SELL" and covering[0].reduce_only
        assert covering[0].qty == AMOUNT
        # a few more ticks, still skewed: one refusal logged, not one per tick
        mark = len(notify_listener.messages())
        wait_ticks(notify_listener, proc, after=mark, ticks=3)
        statuses = status_texts(notify_listener, mark)
        assert all(s.startswith("orders refused: ") for s in statuses), statuses
        text = log.read_text()
        assert text.count("clock.orders_refused") == 1, text[-3000:]
        assert "exceeds the bound of 500 ms" in text

        sim.set_clock_skew_ms(0)  # the clock is right again
        assert wait_until(lambda: "clock.orders_allowed" in log.read_text(), timeout=30), (
            log.read_text()[-3000:]
        )
        mark = len(notify_listener.messages()) + 1  # the tick that logged it may say either
        wait_ticks(notify_listener, proc, after=mark, ticks=2)
        statuses = status_texts(notify_listener, mark)
        assert not any(s.startswith("orders refused") for s in statuses), statuses
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert text.count("clock.orders_refused") == 1
    skewed = sim.requests[skewed_at:]
    # -1021 told the daemon its offset was stale; nothing executed on a wrong stamp
    assert any(r.status == 400 and not r.accepted for r in skewed)
    # the only order that left while skewed was protective: no entry, no doubled position
    entries = [r for r in skewed if (r.method, r.path) == ("POST", "/fapi/v1/order") and r.accepted]
    assert entries == []
    assert sim.account.position(SYMBOL).amount == AMOUNT


def test_small_skew_inside_the_recv_window_is_caught_by_the_periodic_remeasure(
    sim: SimExchange, tmp_path: Path, notify_listener: NotifyListener
) -> None:
    """2 s behind the exchange: every signed request is still accepted (no -1021), so only
    the re-measure every ``clock_resync_s / 2`` sees it; then orders are refused as above."""
    _own_a_long(tmp_path, sim)
    log = tmp_path / "daemon.log"
    config = _config(tmp_path, sim, exchange_extra="clock_resync_s = 10")
    proc = start_live(
        config, cwd=tmp_path, log=log, env=clean_env(NOTIFY_SOCKET=notify_listener.path)
    )
    try:
        notify_listener.wait_key("READY", "1", timeout=60, proc=proc)
        sim.set_clock_skew_ms(2000)
        skewed_at = len(sim.requests)
        began = time.monotonic()
        assert wait_until(lambda: "clock.orders_refused" in log.read_text(), timeout=30), (
            log.read_text()[-3000:]
        )
        caught_s = time.monotonic() - began
        found = re.search(r"clock.orders_refused reason=clock offset (-?\d+) ms", log.read_text())
        assert found is not None and abs(int(found[1]) - 2000) <= 100, found
        righted_at = len(sim.requests)
        sim.set_clock_skew_ms(0)
        assert wait_until(lambda: "clock.orders_allowed" in log.read_text(), timeout=30), (
            log.read_text()[-3000:]
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert caught_s <= 15  # one re-measure period (5 s) and a tick, with room for load
    assert all(r.status != 400 for r in sim.requests[skewed_at:righted_at])  # no -1021 told it
