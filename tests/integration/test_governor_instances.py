"""Five real daemons on one host share one request-weight budget against one exchange.

One standalone simulated exchange with a low weight limit (and a short window, so the
test does not wait whole minutes), five ``trendbotd run`` processes with their own
instance names, journals and symbols, one runtime directory (where the shared budget file
lives, as /run/trendbotd does under systemd). Their startup syncs together weigh about
twice the limit: the governor spreads them over windows instead of letting the exchange
answer 429, and nobody provokes a 418 ban. Each instance owns a position whose stop is
missing on the exchange: the stop goes out while reads are held back. Judged from the
exchange's own request log.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from decimal import ROUND_UP, Decimal
from pathlib import Path

import pytest
from sim_process import SimProcess, running_sim
from support.daemon_harness import clean_env, wait_until

from trendbotd.core.client_ids import make_client_id
from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.journal.store import open_journal
from trendbotd.sim.specs import spec_for

INSTANCES = 5
WEIGHT_LIMIT = 200  # per window; one instance's startup weighs about 85
WINDOW_S = 10
SYMBOLS = [f"{base}/USDT:USDT" for base in ("BTC", "ETH", "SOL", "XRP", "BNB")]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    yield from running_sim(
        tmp_path,
        *("--symbols", ",".join(SYMBOLS)),
        *("--weight-limit", str(WEIGHT_LIMIT), "--weight-window-s", str(WINDOW_S)),
    )


def _config(tmp_path: Path, sim: SimProcess, index: int) -> Path:
    path = tmp_path / f"g{index}.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [instance]
            name = "g{index}"
            runtime_dir = "{tmp_path / "run"}"
            state_dir = "{tmp_path / f"state{index}"}"

            [exchange]
            paper = false
            base_url = "{sim.base_url}"
            credentials_file = "{sim.creds}"

            [ratelimit]
            weight_limit = {WEIGHT_LIMIT}
            window_s = {WINDOW_S}

            [trading]
            symbols = ["{SYMBOLS[index]}"]

            [service]
            startup_timeout_s = 120
            tick_interval_s = 600
            """
        )
    )
    return path


def _own_a_position_without_its_stop(tmp_path: Path, sim: SimProcess, index: int) -> None:
    """A long the journal knows (a filled entry with its planned stop) whose stop is gone
    from the exchange: startup must place it again."""
    symbol, spec = SYMBOLS[index], spec_for(SYMBOLS[index])
    price = Decimal(sim.control("GET", "/sim/state")["prices"][spec.id])
    amount = (Decimal(200) / price / spec.step).to_integral_value(ROUND_UP) * spec.step
    stop = (price * Decimal("0.8")).quantize(spec.tick)
    sim.control("POST", "/sim/position",
                {"symbol": spec.id, "amount": str(amount), "entry_price": str(price)})  # fmt: skip
    now = int(time.time() * 1000)
    candle = now - now % 3_600_000 - 3_600_000
    (tmp_path / f"state{index}").mkdir()
    with open_journal(tmp_path / f"state{index}" / f"g{index}.db") as journal:
        cid = make_client_id(instance=f"g{index}", symbol=symbol, candle_time_ms=candle, seq=0,
                             purpose=Purpose.ENTRY)  # fmt: skip
        journal.orders.add_intent(
            Intent(
                cid,
                symbol,
                Side.BUY,
                OrderType.MARKET,
                amount,
                Purpose.ENTRY,
                candle,
                0,
                IntentState.FILLED,
                now,
                now,
                protective_stop=stop,
                filled=amount,
                average_price=price,
                attempts=1,
                sent_ms=now,
            )
        )
        journal.account.set_expected_position(symbol, amount, now_ms=now)


@pytest.mark.slow
def test_five_instances_share_the_budget_without_429_storms_or_bans(
    sim: SimProcess, tmp_path: Path
) -> None:
    logs = [tmp_path / f"g{i}.log" for i in range(INSTANCES)]
    for i in range(INSTANCES):
        _own_a_position_without_its_stop(tmp_path, sim, i)
    procs = []
    started = time.monotonic()
    for i in range(INSTANCES):
        with logs[i].open("w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "trendbotd",
                        "run",
                        "--config",
                        str(_config(tmp_path, sim, i)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=clean_env(),
                    cwd=tmp_path,
                )
            )
    try:

        def all_ready() -> bool:
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise AssertionError(f"{log.name} exited {proc.returncode}: {log.read_text()}")
            return all("daemon.ready" in log.read_text() for log in logs)

        assert wait_until(all_ready, timeout=150, interval=0.2), [
            log.read_text()[-2000:] for log in logs
        ]
        ready_s = time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()
        codes = [proc.wait(timeout=30) for proc in procs]
    assert codes == [0] * INSTANCES
    requests = sim.requests()
    statuses = [r["status"] for r in requests]
    print(
        f"governor.figures instances={INSTANCES} all_ready_s={ready_s:.1f} "
        f"requests={len(statuses)} status_429={statuses.count(429)} "
        f"status_418={statuses.count(418)}"
    )
    assert statuses.count(418) == 0
    assert statuses.count(429) <= 2, statuses.count(429)
    budget_files = list((tmp_path / "run").glob("ratelimit-*.json"))
    assert len(budget_files) == 1  # one budget for the host, not one per instance
    texts = [log.read_text() for log in logs]
    # The budget was really tight: the startups were spread over more than one window...
    assert any("ratelimit.held" in text for text in texts)
    # Every instance's missing stop went out (orders weigh nothing on the IP limit and
    # protective orders may use the reserve) and none was held back.
    stops = [r for r in requests if (r["method"], r["path"]) == ("POST", "/fapi/v1/algoOrder")]
    # (a trailing stop may have moved after the first decision: more stops, all accepted)
    assert {r["params"]["symbol"] for r in stops} == {spec_for(s).id for s in SYMBOLS}
    assert [r["status"] for r in stops] == [200] * len(stops)
    assert not any("order.held" in text for text in texts)
    # ...and a tick held back waits out the pause instead of failing again at once.
    assert max(text.count("tick.exchange_error") for text in texts) <= 3
