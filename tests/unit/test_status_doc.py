"""The ``status --json`` document around the journal's part: schema, lock, holder."""

from __future__ import annotations

from pathlib import Path

from trendbotd.journal.operator_requests import FlattenRequest, finish_flatten, request_flatten
from trendbotd.journal.status import format_status, read_status
from trendbotd.journal.store import open_journal
from trendbotd.service.pidlock import HolderInfo
from trendbotd.service.procinfo import ProcessResources
from trendbotd.service.status_doc import SCHEMA, status_document

NOW = 1_700_000_000_000


def _doc(
    holder: HolderInfo | None,
    resources: ProcessResources | str | None,
    *,
    journal: Path = Path("/var/lib/trendbotd/bot.db"),
) -> dict[str, object]:
    return status_document(
        instance="bot",
        lock_path=Path("/run/trendbotd/bot.pid"),
        lock_source="default",
        holder=holder,
        resources=resources,
        journal_path=journal,
        report=read_status(journal) if journal.exists() else None,
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
    assert doc["flatten"] == {"pending": None, "last_done": None}


def test_the_flatten_request_pending_then_done(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first = FlattenRequest("1-1", ("BTC/USDT:USDT",), "alice", "news", NOW)
    second = FlattenRequest("1-2", None, "bob", "", NOW + 10)
    with open_journal(path) as journal:
        request_flatten(journal, first)
    assert _doc(None, None, journal=path)["flatten"] == {
        "pending": {
            "id": "1-1",
            "symbols": ["BTC/USDT:USDT"],
            "reason": "flatten BTC/USDT:USDT requested by alice: news",
            "at_ms": NOW,
        },
        "last_done": None,
    }
    with open_journal(path) as journal:
        finish_flatten(journal, first, "flat: 1 position(s) closed", now_ms=NOW + 5)
        request_flatten(journal, second)
    doc = _doc(None, None, journal=path)
    assert doc["flatten"] == {
        "pending": {
            "id": "1-2",
            "symbols": None,
            "reason": "flatten all symbols requested by bob",
            "at_ms": NOW + 10,
        },
        "last_done": {"id": "1-1", "outcome": "flat: 1 position(s) closed", "at_ms": NOW + 5},
    }
    text = format_status(read_status(path), now_ms=NOW + 20).splitlines()
    assert text[-3:] == [
        "flatten:   pending since 2023-11-14 22:13:20 UTC (flatten all symbols requested by bob)",
        "  pending request 1-2: all symbols",
        "  last done: request 1-1 at 2023-11-14 22:13:20 UTC: flat: 1 position(s) closed",
    ]
