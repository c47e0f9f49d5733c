"""``make bench``: every benchmark, one table on stdout (progress goes to stderr).

    .venv/bin/python -m bench [--runs N] [--idle-window S] [--only SECTION,...]

Sections: imports, daemon (launch, RSS, SIGTERM, duplicate), idle, metrics (RSS and idle
CPU with [metrics] on versus off), latency, backtest;
soak (>= 10,000 ticks with random faults, see bench/bench_soak.py) only when named in
--only: it takes minutes.
Two checkouts before and after a change, in one run: python -m bench.bench_compare
--before DIR --after DIR (not a section here: it needs the two trees).
Every figure is a median over N runs (default 5, at least 5 unless --quick) with its
baseline measured in the same run. The simulated exchange runs as its own process on
127.0.0.1 so that the daemon's CPU and memory figures never include it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench.common import Row, log, render_table, running_sim, scratch_dir

SECTIONS = ("imports", "daemon", "idle", "metrics", "latency", "backtest")
ON_REQUEST = ("soak",)  # long: run only when --only names them


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure (>= 5)")
    parser.add_argument(
        "--idle-window", type=float, default=60.0, help="seconds of idle CPU measurement"
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="stretch (>1) or shrink (<1) the latency trading windows",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--soak-ticks", type=int, default=10_000, help="engine ticks of the soak")
    parser.add_argument(
        "--soak-seed", type=int, default=1, help="seed of the soak's market and faults"
    )
    parser.add_argument(
        "--quick", action="store_true", help="debugging: allow fewer runs and a short idle window"
    )
    args = parser.parse_args(argv)
    if not args.quick and args.runs < 5:
        parser.error("--runs must be at least 5 (use --quick to debug with fewer)")
    unknown = set(args.only.split(",")) - set(SECTIONS) - set(ON_REQUEST)
    if unknown:
        known = ", ".join(SECTIONS + ON_REQUEST)
        parser.error(f"unknown sections {sorted(unknown)}; known: {known}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    chosen = [s for s in SECTIONS + ON_REQUEST if s in args.only.split(",")]
    runs = max(1, args.runs)
    started = time.monotonic()
    load = os.getloadavg()
    log(f"runs={runs} sections={','.join(chosen)} load={load[0]:.2f},{load[1]:.2f},{load[2]:.2f}")
    rows: list[Row] = []
    notes: list[str] = []
    if "daemon" in chosen or "idle" in chosen:
        from bench.bench_daemon import SYMBOLS_10, idle_cpu_row, launch_rows

        with (
            scratch_dir("tbd-bench-") as directory,
            running_sim(directory, symbols=SYMBOLS_10) as sim,
        ):
            log(f"simulated exchange pid {sim.proc.pid} at {sim.base_url}")
            if "daemon" in chosen:
                rows += launch_rows(directory, sim, runs)
            if "idle" in chosen:
                rows.append(idle_cpu_row(directory, sim, runs, window_s=args.idle_window))
                notes.append(
                    f"idle CPU: {runs} 1-symbol daemons side by side, CPU time of each "
                    "(all threads, ns from /proc schedstat) over one window of the real "
                    "clock without a candle close, WATCHDOG=1 armed at 30 s as under systemd, "
                    "multiplied up to one hour; the clock re-sync every 600 s and the "
                    "hourly candle tick are not in the window."
                )
    if "metrics" in chosen:
        from bench.bench_daemon import SYMBOLS_1
        from bench.bench_metrics import metrics_rows

        with (
            scratch_dir("tbd-bench-metrics-") as directory,
            running_sim(directory, symbols=SYMBOLS_1) as sim,
        ):
            rows += metrics_rows(directory, sim, runs, window_s=args.idle_window)
        notes.append(
            f"metrics: RSS after READY=1 and three scrapes, launches of the same 1-symbol "
            f"daemon alternating off and on; idle CPU of {runs} daemons off and {runs} on side "
            "by side over one window, the on ones scraped every 15 s (Prometheus' default "
            "is 60 s: a quarter of the scrape cost)."
        )
    if "latency" in chosen:
        from bench.bench_latency import latency_rows

        latency, latency_notes = latency_rows(runs, scale=args.latency_scale)
        rows += latency
        notes += latency_notes
    if "backtest" in chosen:
        from bench.bench_throughput import backtest_rows

        rows += backtest_rows(runs)
    if "imports" in chosen:
        from bench.bench_imports import import_rows

        rows += import_rows(runs)
    if "soak" in chosen:
        from bench.bench_soak import quiet_daemon_logs, run_soak, soak_rows

        quiet_daemon_logs()
        with scratch_dir("tbd-soak-") as directory:
            report = run_soak(
                ticks=args.soak_ticks, seed=args.soak_seed, fault_rate=0.1, directory=directory
            )
        rows += soak_rows(report)
        notes += report.lines()
    elapsed = time.monotonic() - started
    end_load = os.getloadavg()
    print(render_table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(
        f"- {runs} runs per figure (medians, after a discarded warm-up), {elapsed:.0f} s in all; "
        f"load average at start {load[0]:.2f}, at end {end_load[0]:.2f} on {os.cpu_count()} CPUs"
    )
    unmet = [r.figure for r in rows if r.verdict in ("NOT MET", "NOT MEASURED")]
    if unmet:
        print(f"- targets not met or not measured: {'; '.join(unmet)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
