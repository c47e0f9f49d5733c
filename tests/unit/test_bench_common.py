"""The statistics and the table of the benchmark suite (bench/common.py)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from bench.common import (
    NotifyListener,
    Row,
    Target,
    format_value,
    median,
    percentile,
    render_table,
    thread_cpu_ns,
)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == 50.5
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match="outside"):
        percentile(values, 101)


def test_targets_ratio_absolute_and_minimum() -> None:
    ratio = Target("max_ratio", 1.3, "<= 1.3x")
    assert ratio.met(130.0, 100.0)
    assert not ratio.met(131.0, 100.0)
    assert not ratio.met(1.0, None)  # no baseline measured: never counted as met
    assert Target("max", 10.0, "< 10").met(9.99, None)
    assert not Target("max", 10.0, "< 10").met(10.0, None)
    assert Target("min", 100_000, ">= 100k").met(100_000, 1.0)
    assert not Target("min", 100_000, ">= 100k").met(99_999, 1.0)


def test_row_ratio_and_verdict() -> None:
    row = Row("launch", 260.0, "ms", "minimal", 200.0, Target("max_ratio", 1.3, "<= 1.3x"))
    assert row.ratio == pytest.approx(1.3)
    assert row.verdict == "met"
    slow = Row("launch", 300.0, "ms", "minimal", 200.0, Target("max_ratio", 1.3, "<= 1.3x"))
    assert slow.verdict == "NOT MET"
    assert Row("floor", 12.0, "ms").ratio is None
    assert Row("floor", 12.0, "ms").verdict == "-"
    missing = Row("latency", None, "ms", "raw", 1.5, Target("max", 10.0, "< 10"))
    assert (missing.ratio, missing.verdict) == (None, "NOT MEASURED")
    assert "| n/a " in render_table([missing])


def test_table_has_one_aligned_line_per_row() -> None:
    rows = [
        Row("a", 1.234, "ms", runs=5),
        Row("longer figure", 123456.0, "candles/s", "loop", 1e6, Target("min", 1e5, ">= 1e5")),
    ]
    lines = render_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width
    assert "| a " in lines[2] and "1.23 ms" in lines[2] and "| 5 " in lines[2]
    assert "123,456 candles/s" in lines[3] and "0.12x" in lines[3] and "| met " in lines[3]


def test_format_value_precision_by_magnitude() -> None:
    assert format_value(0.4567, "ms") == "0.46 ms"
    assert format_value(45.67, "MiB") == "45.7 MiB"
    assert format_value(456.7, "ms") == "457 ms"


def test_notify_listener_sees_ready_among_other_lines(tmp_path: Path) -> None:
    with NotifyListener(tmp_path / "notify") as listener:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"STATUS=syncing", str(listener.path))
            sender.sendto(b"STATUS=up\nREADY=1", str(listener.path))
        at = listener.wait_for("READY=1", None, timeout_s=5)
        assert [text for _, text in listener.messages] == ["STATUS=syncing", "STATUS=up\nREADY=1"]
        assert at == listener.messages[-1][0]
        with pytest.raises(RuntimeError, match="no WATCHDOG=1"):
            listener.wait_for("WATCHDOG=1", None, timeout_s=0.2)
    assert not (tmp_path / "notify").exists()


def test_thread_cpu_ns_counts_this_process_in_nanoseconds() -> None:
    first = thread_cpu_ns(os.getpid())
    sum(i * i for i in range(200_000))  # burn a little CPU on this thread
    second = thread_cpu_ns(os.getpid())
    tid = threading.get_native_id()
    assert tid in first and tid in second
    assert second[tid] > first[tid]
