"""Two checkouts of the project, before and after a change, measured in one run.

    .venv/bin/python -m bench.bench_compare --before DIR --after DIR [--runs N] [--quick]

Each side's daemon runs the code of its own checkout (``python -m trendbotd`` with
PYTHONPATH=DIR; the dependencies are this venv's, the same for both). The simulated
exchanges run the --after checkout's code, each in its own process on 127.0.0.1.
Launches alternate before, after, before, after... or run side by side, so that a change
of machine load hits both sides alike. Rows (value: after; baseline: before; ratio
after/before):
  - requests per between-candle tick and per decision tick, median and p99, 10 symbols
    (how a tick is identified: bench/compare_accounting.py);
  - candle close+grace to order request, p50 and p99, 1 and 10 symbols (paper mode on a
    scaled clock, bench/bench_latency.py's method), and the ratio of the two p99s. Only
    here does each side run its own checkout's simulator, inside the daemon: only paper
    mode puts the daemon on a scaled clock (a live daemon reads the host's clock), and
    hundreds of candle closes in seconds need one;
  - idle CPU between 1h candles and RSS one second after READY=1.
The same checkout on both sides shows the noise: ratios away from 1.00x by that much are
not a change.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.bench_daemon import SYMBOLS_10
from bench.bench_latency import Case
from bench.common import (
    Row,
    SimProcess,
    Target,
    log,
    median,
    mib,
    percentile,
    render_table,
    scratch_dir,
)
from bench.compare_accounting import BETWEEN, DECISION, TickTally, endpoint_medians
from bench.compare_sides import (
    TICK_INTERVAL_S,
    TICKS_TIMEFRAME,
    IdleDaemon,
    TickRound,
    Tree,
    idle_round,
    latency_launch,
    tick_round,
)

SIDES = ("before", "after")
RATIO_LIMIT = 1.5  # issue 12: the 10-symbol p99 at most 1.5x the 1-symbol p99


@dataclass(frozen=True, slots=True)
class Plan:
    runs: int
    latency_cases: tuple[Case, ...]
    idle_window_s: float


def plan_for(*, runs: int, quick: bool) -> Plan:
    """Window lengths: a full run stays under ~10 minutes on a quiet 2-core machine,
    --quick well under 3."""
    one_s, ten_s = (12.0, 12.0) if quick else (30.0, 20.0)
    return Plan(
        runs=runs,
        latency_cases=(
            Case("1 symbol", SYMBOLS_10[:1], speed=240.0, window_s=one_s),
            Case("10 symbols", SYMBOLS_10, speed=60.0, window_s=ten_s),
        ),
        idle_window_s=15.0 if quick else 60.0,
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--before", type=Path, required=True, help="checkout measured first")
    parser.add_argument("--after", type=Path, required=True, help="checkout compared to it")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="launches per side (default 3; the tick phase runs them all at once)",
    )
    parser.add_argument("--quick", action="store_true", help="one launch per side, short windows")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for side in SIDES:
        root: Path = getattr(args, side)
        if not (root / "trendbotd" / "__main__.py").is_file():
            parser.error(f"--{side} {root}: not a checkout of the project (no trendbotd/)")
        setattr(args, side, root.resolve())
    return args


def _latency(trees: list[Tree], directory: Path, plan: Plan) -> tuple[list[Row], list[str]]:
    pooled: dict[tuple[str, str], list[float]] = {
        (t.label, c.label): [] for t in trees for c in plan.latency_cases
    }
    joined = True
    for run in range(plan.runs):
        for case in plan.latency_cases:
            for tree in trees:  # before, after, before, after...
                name = f"lat-{tree.label}-{len(case.symbols)}-{run}"
                log(f"latency: {name}, {case.window_s:g} s at {case.speed:g}x")
                samples, by_journal = latency_launch(tree, directory, case, name)
                pooled[(tree.label, case.label)] += samples
                joined = joined and by_journal
    rows: list[Row] = []
    p99: dict[tuple[str, str], float | None] = {}
    for case in plan.latency_cases:
        got = {t.label: pooled[(t.label, case.label)] for t in trees}
        for q, name in ((50.0, "p50"), (99.0, "p99")):
            values = {k: percentile(v, q) if v else None for k, v in got.items()}
            if q == 99.0:
                p99.update({(k, case.label): v for k, v in values.items()})
            rows.append(
                _row(
                    f"candle close+grace to order, {case.label}, {name}",
                    values,
                    "ms",
                    runs=min(len(v) for v in got.values()),
                )
            )
    one, ten = (c.label for c in plan.latency_cases)
    ratios = {s: _ratio(p99[(s, ten)], p99[(s, one)]) for s in SIDES}
    rows.append(
        _row(
            "p99 10 symbols / p99 1 symbol",
            ratios,
            "x",
            target=Target("max", RATIO_LIMIT + 1e-9, f"<= {RATIO_LIMIT:g}x (after)"),
        )
    )
    notes = [
        f"latency: {plan.runs} paper launch(es) per side and case, before and after "
        "alternating; samples pooled per side: "
        + "; ".join(f"{k[0]} {k[1]} {len(v)} orders" for k, v in pooled.items())
        + ". Paper mode runs the simulator inside the daemon (each side its own "
        "checkout's); counted from the scheduled wake (close + grace) to the order "
        "request's receipt. "
        + (
            "Candle of each order from the journal."
            if joined
            else "Candle of each order from its client order id (a journal was not readable)."
        )
    ]
    return rows, notes


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _row(
    figure: str,
    values: dict[str, float | None],
    unit: str,
    *,
    runs: int = 0,
    target: Target | None = None,
) -> Row:
    return Row(
        figure,
        values["after"],
        unit,
        baseline_name="before",
        baseline=values["before"],
        target=target,
        runs=runs,
    )


def _ticks(trees: list[Tree], directory: Path, plan: Plan) -> tuple[list[Row], list[str]]:
    rounds: dict[str, list[TickRound]] = {t.label: [] for t in trees}
    after = trees[-1]
    with ExitStack() as stack:
        # before, after, before, after...: one simulator each, all running the --after code
        slots = [(tree, stack.enter_context(_tick_sim(after, directory, f"{tree.label}-{i}")))
                 for i in range(plan.runs) for tree in trees]  # fmt: skip
        for (tree, _), got in zip(slots, tick_round(slots, directory), strict=True):
            rounds[tree.label].append(got)
    tallies = {k: [t for r in v for t in r.tallies] for k, v in rounds.items()}
    rows: list[Row] = []
    notes: list[str] = []
    for kind in (BETWEEN, DECISION):
        of_kind = {k: [t for t in v if t.kind == kind] for k, v in tallies.items()}
        for q, name in ((50.0, "median"), (99.0, "p99")):
            values = {k: _count(v, q) for k, v in of_kind.items()}
            rows.append(
                _row(
                    f"requests per {kind} tick, 10 symbols, {name}",
                    values,
                    "req",
                    runs=min(len(v) for v in of_kind.values()),
                )
            )
        for label, ticks in of_kind.items():
            shown = ", ".join(f"{e} {n:g}" for e, n in endpoint_medians(ticks).items())
            notes.append(
                f"requests per {kind} tick, {label} ({len(ticks)} ticks), median by "
                f"endpoint: {shown or 'none'}"
            )
    rss = {k: mib(median([float(r.rss) for r in v])) for k, v in rounds.items()}
    rows.append(_row("RSS 1 s after READY=1, 10 symbols", dict(rss), "MiB", runs=plan.runs))
    notes.append(
        f"ticks: {plan.runs} before and {plan.runs} after 10-symbol daemon(s) side by side "
        f"({TICKS_TIMEFRAME} candles, re-sync every {TICK_INTERVAL_S:g} s), each on its own "
        "simulator at real speed, from READY=1 through one candle close; a tick ends at "
        "its STATUS= datagram and holds the requests received since the previous one; the "
        "first tick after READY=1 (start-up catch-up) is not counted; see "
        "bench/compare_accounting.py for which tick decides."
    )
    return rows, notes


def _tick_sim(after: Tree, directory: Path, tag: str) -> SimProcess:
    return SimProcess(
        directory,
        symbols=SYMBOLS_10,
        command=after.command,
        env=after.env,
        extra_args=("--timeframe", TICKS_TIMEFRAME),
        tag=f"sim-ticks-{tag}",
    )


def _count(ticks: list[TickTally], q: float) -> float | None:
    return percentile([float(t.total) for t in ticks], q) if ticks else None


def _idle(trees: list[Tree], directory: Path, plan: Plan) -> tuple[list[Row], list[str]]:
    after = trees[-1]
    with SimProcess(
        directory, symbols=SYMBOLS_10[:1], command=after.command, env=after.env, tag="sim-idle"
    ) as sim:
        got: dict[str, list[IdleDaemon]] = idle_round(
            trees, directory, sim, per_side=plan.runs, window_s=plan.idle_window_s
        )
    cpu = {k: median([d.cpu_s_per_h for d in v]) for k, v in got.items()}
    rss = {k: mib(median([float(d.rss) for d in v])) for k, v in got.items()}
    rows = [
        _row("idle CPU between 1h candles, 1 symbol", dict(cpu), "CPU-s/h", runs=plan.runs),
        _row("RSS 1 s after READY=1, 1 symbol", dict(rss), "MiB", runs=plan.runs),
    ]
    note = (
        f"idle: {plan.runs} 1-symbol daemon(s) per side side by side (1h candles, default "
        f"re-sync interval, WATCHDOG=1 armed), {plan.idle_window_s:g} s of the real clock "
        "without a candle close, CPU time (ns per thread) multiplied up to one hour."
    )
    return rows, [note]


def _leftovers() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True) if p.is_running()]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # SIGTERM unwinds like Ctrl-C: every daemon and simulator is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    plan = plan_for(runs=args.runs, quick=args.quick)
    trees = [Tree("before", args.before), Tree("after", args.after)]
    started = time.monotonic()
    load = os.getloadavg()
    log(
        f"before={args.before} after={args.after} runs={plan.runs} quick={args.quick} "
        f"load={load[0]:.2f}"
    )
    for tree in trees:
        tree.prepare()
    rows: list[Row] = []
    notes: list[str] = []
    with scratch_dir("tbd-bench-compare-") as directory:
        for phase in (_ticks, _latency, _idle):
            got_rows, got_notes = phase(trees, directory, plan)
            rows += got_rows
            notes += got_notes
    left = _leftovers()
    elapsed = time.monotonic() - started
    print(render_table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(
        f"- {elapsed:.0f} s in all; load average at start {load[0]:.2f}, at end "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; value = after, baseline = "
        "before, ratio = after/before"
    )
    given = sys.argv[1:] if argv is None else argv
    print(f"- command: {shlex.join([sys.executable, '-m', 'bench.bench_compare', *given])}")
    if left:
        log(f"processes of this run still running after the teardown: {left}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
