"""The soak benchmark (bench/bench_soak.py) in miniature: a short run of the real trading
stack with a fault armed before a third of the ticks finds no violation."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from bench.bench_soak import run_soak  # noqa: E402


def test_short_soak_with_faults_finds_no_violation(tmp_path: Path) -> None:
    report = run_soak(ticks=150, seed=6, fault_rate=0.3, directory=tmp_path, progress=False)
    assert report.stopped == ""
    assert report.ticks == 150
    assert sum(report.faults_fired.values()) >= 10
    assert report.orders_seen > 0  # entries and stops went through the faults
    print("\n" + "\n".join(report.lines()))
    assert report.violations == {}, "\n".join(report.lines())
    # every entry placed its stop first: the exchange never saw a bare position
    assert report.max_unprotected_ms == 0
