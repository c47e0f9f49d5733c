"""The ``status --json`` document around the journal's part: schema, lock, holder."""

from __future__ import annotations

from pathlib import Path

from trendbotd.service.pidlock import HolderInfo
from trendbotd.service.procinfo import ProcessResources
from trendbotd.service.status_doc import SCHEMA, status_document


def _doc(holder: HolderInfo | None, resources: ProcessResources | str | None) -> dict[str, object]:
    return status_document(
        instance="bot",
        lock_path=Path("/run/trendbotd/bot.pid"),
        lock_source="default",
        holder=holder,
        resources=resources,
        journal_path=Path("/var/lib/trendbotd/bot.db"),
        report=None,
    )


def test_a_running_holder_with_its_resources() -> None:
    doc = _doc(
        HolderInfo(42, "PID 42 (python3 -m trendbotd run)"), ProcessResources(2**26, 1.5, 4, 90)
    )
    assert (doc["schema"], SCHEMA, doc["running"]) == (1, 1, True)
    assert doc["lock"] == {"path": "/run/trendbotd/bot.pid", "source": "default"}
    assert doc["holder"] == {
        "pid": 42,
        "description": "PID 42 (python3 -m trendbotd run)",
        "rss_bytes": 2**26,
        "cpu_s": 1.5,
        "threads": 4,
        "uptime_s": 90,
        "resources_unknown": None,
    }


def test_a_holder_whose_resources_cannot_be_read_says_why() -> None:
    doc = _doc(HolderInfo(42, "PID 42"), "resources unknown (AccessDenied)")
    holder = doc["holder"]
    assert isinstance(holder, dict)
    assert holder["resources_unknown"] == "resources unknown (AccessDenied)"
    assert holder["rss_bytes"] is None and holder["uptime_s"] is None


def test_nobody_holds_the_lock() -> None:
    doc = _doc(None, None)
    assert (doc["running"], doc["holder"]) == (False, None)
    assert doc["journal"] == {
        "path": "/var/lib/trendbotd/bot.db",
        "exists": False,
        "schema_version": None,
    }
