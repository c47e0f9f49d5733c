"""``trendbotd status --json``: one versioned document, the same facts as the text report.

Pure: the caller gathers the lock holder, its resources and the journal's report. The key
set is part of the interface (README.md, the man page): ``schema`` changes only when a
key is removed or changes meaning; new keys may be added within a schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trendbotd.journal.status import StatusReport, absent_status_dict, status_dict
from trendbotd.service.pidlock import HolderInfo
from trendbotd.service.procinfo import ProcessResources

SCHEMA = 1


def status_document(
    *,
    instance: str,
    lock_path: Path,
    lock_source: str,
    holder: HolderInfo | None,
    resources: ProcessResources | str | None,
    journal_path: Path,
    report: StatusReport | None,
) -> dict[str, Any]:
    """``resources``: the holder's (or why unknown); ``report`` None when there is no
    journal yet."""
    journal = absent_status_dict(journal_path) if report is None else status_dict(report)
    return {
        "schema": SCHEMA,
        "instance": instance,
        "running": holder is not None,
        "lock": {"path": str(lock_path), "source": lock_source},
        "holder": None if holder is None else _holder(holder, resources),
        **journal,
    }


def _holder(holder: HolderInfo, resources: ProcessResources | str | None) -> dict[str, Any]:
    known = resources if isinstance(resources, ProcessResources) else None
    return {
        "pid": holder.pid,
        "description": holder.description,
        "rss_bytes": known.rss_bytes if known else None,
        "cpu_s": known.cpu_s if known else None,
        "threads": known.threads if known else None,
        "uptime_s": known.uptime_s if known else None,
        "resources_unknown": resources if isinstance(resources, str) else None,
    }
