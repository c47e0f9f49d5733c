"""Resource use of a running daemon for ``trendbotd status`` (psutil).

Not used on the duplicate-launch path: there the holder is named from /proc directly,
because importing psutil would add a quarter to the time a refused start takes.
"""

from __future__ import annotations

import time

import psutil


def resource_line(pid: int) -> str:
    """``RSS 58.4 MiB, CPU 12.3 s, 3 threads, up 2h05m`` or why it is unknown."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            rss = proc.memory_info().rss
            cpu = proc.cpu_times()
            threads = proc.num_threads()
            started = proc.create_time()
    except psutil.Error as e:
        return f"resources unknown ({type(e).__name__})"
    up_s = max(0, int(time.time() - started))
    hours, rest = divmod(up_s, 3600)
    return (
        f"RSS {rss / 2**20:.1f} MiB, CPU {cpu.user + cpu.system:.1f} s, "
        f"{threads} threads, up {hours}h{rest // 60:02d}m"
    )
