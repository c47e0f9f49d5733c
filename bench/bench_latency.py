"""Candle close to order request: how long the daemon takes to act on a closed candle.

How it is measured (honestly, and what it includes):
  - The daemon runs for real (``trendbotd run --paper --foreground``) on 1m candles with
    the simulated exchange on a scaled clock (``paper.speed``, one 1m candle per real
    second at 60x), so that hundreds of candle closes happen in a minute. The simulator
    runs inside the daemon's process in paper mode: its request handling shares the
    daemon's interpreter, so the figure is an upper bound of the daemon's own latency.
  - The engine deliberately wakes ``CANDLE_GRACE_MS`` (exchange time) after a close,
    because exchanges publish the closed bar a moment late. The latency is counted from
    that scheduled instant (close + grace) to the simulator having received and executed
    the order request: the wake-up, the per-tick account re-sync (balance, positions,
    open and conditional orders of every symbol), the candle fetch, the decision, the
    guards, the journal write with its fsync, signing and the HTTP request.
  - Each (symbol, candle) whose decision sent at least one order counts once: the time of
    its first order request (entry, exit or moved stop), from the journal (client order
    id, candle time, created/sent times) joined with the simulator's request log
    (``/sim/requests``: client id, server time of receipt). Only candles that closed after
    READY=1 count. Times are simulator milliseconds divided by the speed (the daemon and
    the simulator share one scaled clock), i.e. real milliseconds. ``exchange.
    max_clock_offset_ms`` is raised to 5000 (exchange ms, i.e. 5000/speed real ms) so that
    the clock guard tolerates the scaled round trips.
  - Baseline, same run: one signed POST /fapi/v1/order with plain ``requests`` to a
    simulator in its own process (bench/raw_orders.py).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bench_daemon import SYMBOLS_1, SYMBOLS_10
from bench.common import (
    TRENDBOTD,
    NotifyListener,
    Row,
    Target,
    log,
    median,
    ms,
    percentile,
    running_sim,
    scratch_dir,
    stop_process,
)
from bench.raw_orders import raw_order_round_trips
from trendbotd.trading.engine import CANDLE_GRACE_MS

TIMEFRAME_MS = 60_000


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    symbols: tuple[str, ...]
    speed: float  # 1m candles per real second x 60
    window_s: float  # real seconds of trading after READY=1


# One symbol acts on few candles, so its clock runs faster to give enough samples; the
# per-candle work does not depend on the speed, only the number of candles per second.
CASES = (
    Case("1 symbol", SYMBOLS_1, speed=240.0, window_s=45.0),
    Case("10 symbols", SYMBOLS_10, speed=60.0, window_s=30.0),
)
ORDER_PATHS = {"/fapi/v1/order": "newClientOrderId", "/fapi/v1/algoOrder": "clientAlgoId"}
# Default periods (so the same history is fetched and computed as in production) with a
# tight trailing stop and the trend filter off (it would keep a 1m random walk mostly
# flat), so that the strategy acts (enters, exits, moves its stop) on many candles:
# each decision that acts is one sample.
STRATEGY_TOML = (
    "[strategy]\natr_stop_mult = 3.0\ntrail_mult = 1.0\nmin_efficiency = 0.0\n"
    '[risk]\nmax_open_positions = 10\ndaily_loss_limit = 1.0\nmax_notional = "100000"\n'
)


@dataclass(frozen=True, slots=True)
class Sample:
    symbol: str
    total_ms: float  # scheduled wake (close + grace) -> request executed by the simulator
    decide_ms: float  # scheduled wake -> intent journalled (re-sync, candles, decision)
    journal_ms: float  # intent created -> marked sent (journal writes, fsync)
    wire_ms: float  # marked sent -> executed by the simulator (ccxt, HTTP, sim)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as reply:  # 127.0.0.1 only
        return json.loads(reply.read())


def _write_config(directory: Path, name: str, case: Case, port: int) -> Path:
    listed = ", ".join(f'"{s}"' for s in case.symbols)
    path = directory / f"{name}.toml"
    path.write_text(
        f'[instance]\nname = "{name}"\nruntime_dir = "{directory / "run"}"\n'
        f'state_dir = "{directory / "state"}"\n'
        "[exchange]\npaper = true\nmax_clock_offset_ms = 5000\n"
        f'[paper]\nspeed = {case.speed}\nport = {port}\nstart_balance = "1000000"\n'
        f'[trading]\nsymbols = [{listed}]\ntimeframe = "1m"\n'
        "[service]\ntick_interval_s = 1.0\n" + STRATEGY_TOML
    )
    return path


@dataclass(frozen=True, slots=True)
class PaperRun:
    ready_ms: int  # simulator time of READY=1
    requests: list[object]  # the simulator's request log (/sim/requests)
    journal: Path


def run_paper_daemon(directory: Path, name: str, case: Case) -> list[Sample]:
    run = paper_run(directory, name, case)
    return join_samples(run.journal, run.requests, ready_ms=run.ready_ms, speed=case.speed)


def paper_run(
    directory: Path,
    name: str,
    case: Case,
    *,
    command: Sequence[str] = (TRENDBOTD,),
    env: dict[str, str] | None = None,
) -> PaperRun:
    """READY=1, ``case.window_s`` of trading, SIGTERM (exit 0 required). ``command`` and
    ``env``: run another checkout's daemon (``python -m trendbotd`` with its PYTHONPATH)."""
    port = _free_port()
    config = _write_config(directory, name, case, port)
    base = f"http://127.0.0.1:{port}"
    log_path = directory / f"{name}.log"
    with NotifyListener(directory / f"notify-{name}") as listener, log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "run", "--paper", "--foreground", "--config", str(config)],
            cwd=directory,
            env=listener.env(PYTHONUNBUFFERED="1", **(env or {})),
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            try:
                listener.wait_for("READY=1", proc, timeout_s=120)
            except RuntimeError as e:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name}: {e}\n{tail}") from None
            ready_ms = _server_time(base)
            log(f"latency: {name} READY, {case.window_s:g} s of {case.speed:g}x paper trading")
            end = time.monotonic() + case.window_s
            while time.monotonic() < end:
                time.sleep(1.0)
                listener.drain()
                if proc.poll() is not None:
                    raise RuntimeError(f"{name}: exited {proc.returncode}")
            requests = _get_json(f"{base}/sim/requests")
        finally:
            code = stop_process(proc)
    if code != 0:
        raise RuntimeError(f"{name}: SIGTERM gave exit {code}")
    assert isinstance(requests, list)
    return PaperRun(ready_ms, requests, directory / "state" / f"{name}.db")


def _server_time(base: str) -> int:
    reply = _get_json(f"{base}/fapi/v1/time")
    assert isinstance(reply, dict)
    return int(reply["serverTime"])


def join_samples(
    journal: Path, requests: list[object], *, ready_ms: int, speed: float
) -> list[Sample]:
    received: dict[str, int] = {}
    for entry in requests:
        assert isinstance(entry, dict)
        key = ORDER_PATHS.get(entry["path"])
        if entry["method"] != "POST" or key is None:
            continue
        cid = entry["params"].get(key)
        if cid and cid not in received:
            received[cid] = int(entry["at_ms"])
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT client_order_id, symbol, candle_time_ms, created_ms, sent_ms FROM intents"
            " WHERE sent_ms IS NOT NULL ORDER BY created_ms"
        ).fetchall()
    first: dict[tuple[str, int], Sample] = {}
    for cid, symbol, candle_ms, created_ms, sent_ms in rows:
        due = candle_ms + TIMEFRAME_MS + CANDLE_GRACE_MS
        if cid not in received or candle_ms + TIMEFRAME_MS <= ready_ms:
            continue
        if (symbol, candle_ms) in first:
            continue
        at = received[cid]
        first[(symbol, candle_ms)] = Sample(
            symbol=symbol,
            total_ms=(at - due) / speed,
            decide_ms=(created_ms - due) / speed,
            journal_ms=(sent_ms - created_ms) / speed,
            wire_ms=(at - sent_ms) / speed,
        )
    return list(first.values())


def latency_rows(runs: int, *, scale: float = 1.0) -> tuple[list[Row], list[str]]:
    """``scale`` stretches the trading windows (more samples) or shrinks them (debugging)."""
    del runs  # every acting candle is one sample; the window sets how many there are
    with scratch_dir("tbd-bench-lat-") as directory:
        with running_sim(directory, symbols=("LTC/USDT:USDT",)) as sim:
            log("latency baseline: raw signed POST /fapi/v1/order x 200")
            raw = raw_order_round_trips(
                sim.base_url, sim.credentials, symbol_id="LTCUSDT", quantity="1", count=200
            )
        raw_p50, raw_p99 = ms(median(raw)), ms(percentile(raw, 99))
        log(f"  raw request p50 {raw_p50:.2f} ms, p99 {raw_p99:.2f} ms")
        rows: list[Row] = []
        notes: list[str] = []
        for base_case in CASES:
            case = dataclasses.replace(base_case, window_s=base_case.window_s * scale)
            name = f"lat{len(case.symbols)}"
            samples = run_paper_daemon(directory, name, case)
            candles = case.window_s * case.speed * 1000 / TIMEFRAME_MS
            if not samples:
                log_text = (directory / f"{name}.log").read_text(errors="replace")
                notes.append(
                    f"latency, {case.label}: no order was sent in {case.window_s:g} s, "
                    f"~{candles * len(case.symbols):.0f} candle closes "
                    f"({log_text.count(' decision symbol=')} decisions in the daemon's log)"
                )
                rows.append(
                    Row(
                        f"candle close+grace to order request, {case.label}, p99",
                        None,
                        "ms",
                        baseline_name="raw requests order p99",
                        baseline=raw_p99,
                        target=Target("max", 10.0, "p99 < 10 ms"),
                    )
                )
                continue
            totals = [s.total_ms for s in samples]
            p50, p99 = median(totals), percentile(totals, 99)
            log(f"  {case.label}: {len(samples)} orders, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            rows += [
                Row(
                    f"candle close+grace to order request, {case.label}, p50",
                    p50,
                    "ms",
                    baseline_name="raw requests order p50",
                    baseline=raw_p50,
                    runs=len(samples),
                ),
                Row(
                    f"candle close+grace to order request, {case.label}, p99",
                    p99,
                    "ms",
                    baseline_name="raw requests order p99",
                    baseline=raw_p99,
                    target=Target("max", 10.0, "p99 < 10 ms"),
                    runs=len(samples),
                ),
            ]
            notes.append(
                f"latency, {case.label}: {len(samples)} acting decisions out of "
                f"~{candles * len(case.symbols):.0f} candle closes ({case.speed:g}x, "
                f"{case.window_s:g} s); medians of the split: re-sync + candles + decision "
                f"{median([s.decide_ms for s in samples]):.2f} ms, journal incl. fsync "
                f"{median([s.journal_ms for s in samples]):.2f} ms, ccxt + HTTP + simulator "
                f"{median([s.wire_ms for s in samples]):.2f} ms"
            )
    notes.append(
        f"latency: counted from the engine's scheduled wake {CANDLE_GRACE_MS} ms (exchange "
        "time) after the close, a wait it takes on purpose; paper mode on a scaled clock with "
        "the simulator inside the daemon process (an upper bound); see bench/bench_latency.py."
    )
    return rows, notes
