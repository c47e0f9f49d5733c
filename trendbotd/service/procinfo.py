"""Resource use of a running daemon for ``trendbotd status`` (psutil).

Not used on the duplicate-launch path: there the holder is named from /proc directly,
because importing psutil would add a quarter to the time a refused start takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class ProcessResources:
    rss_bytes: int
    cpu_s: float  # user + system since the process started
    threads: int
    uptime_s: int


def process_resources(pid: int) -> ProcessResources | str:
    """What the process uses, or why that is unknown (it exited, no permission)."""
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
    return ProcessResources(rss, round(cpu.user + cpu.system, 2), threads, up_s)


def resource_line(pid: int) -> str:
    """``RSS 58.4 MiB, CPU 12.3 s, 3 threads, up 2h05m`` or why it is unknown."""
    found = process_resources(pid)
    if isinstance(found, str):
        return found
    hours, rest = divmod(found.uptime_s, 3600)
    return (
        f"RSS {found.rss_bytes / 2**20:.1f} MiB, CPU {found.cpu_s:.1f} s, "
        f"{found.threads} threads, up {hours}h{rest // 60:02d}m"
    )
