"""The SQLite outbox: per-channel delivery state, dedupe by alert id, bound with counted
drops, run bookkeeping for unclean exits, and the per-channel send lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from trendbotd.alerts.events import Severity
from trendbotd.alerts.outbox import ChannelLock, NewAlert, Outbox, outbox_path


def _new(alert_id: str, at_ms: int = 1000, event: str = "daemon.started") -> NewAlert:
    return NewAlert(
        alert_id=alert_id,
        event=event,
        severity=Severity.INFO,
        created_ms=at_ms,
        coalesce_key=f"{event}/",
        text=f"{event} {alert_id}",
        fields={"n": alert_id},
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(outbox_path(tmp_path, "t"), max_alerts=10)


def test_pending_per_channel_until_marked_sent(outbox: Outbox) -> None:
    assert outbox.add(_new("a"), ["hook", "tg"])
    assert outbox.add(_new("b"), ["hook"])
    assert [p.alert_id for p in outbox.pending("hook")] == ["a", "b"]
    assert [p.alert_id for p in outbox.pending("tg")] == ["a"]
    outbox.mark_sent("hook", [outbox.pending("hook")[0].seq], now_ms=2000)
    assert [p.alert_id for p in outbox.pending("hook")] == ["b"]
    assert outbox.depth() == 2 and outbox.depth("tg") == 1
    assert outbox.fields(outbox.pending("hook")[0].seq) == {"n": "b"}


def test_a_known_id_is_ignored_even_after_delivery(outbox: Outbox) -> None:
    assert outbox.add(_new("crash-1"), ["hook"])
    outbox.mark_sent("hook", [p.seq for p in outbox.pending("hook")], now_ms=2000)
    assert not outbox.add(_new("crash-1"), ["hook"])
    assert outbox.pending("hook") == []
    assert len(outbox.all_alerts()) == 1


def test_survives_reopening(tmp_path: Path) -> None:
    path = outbox_path(tmp_path, "t")
    first = Outbox(path, max_alerts=10)
    first.add(_new("a"), ["hook"])
    first.close()
    again = Outbox(path, max_alerts=10)
    assert [p.alert_id for p in again.pending("hook")] == ["a"]


def test_bounded_delivered_go_first_then_oldest_counted(outbox: Outbox) -> None:
    for i in range(5):
        outbox.add(_new(f"sent{i}", at_ms=i), ["hook"])
    outbox.mark_sent("hook", [p.seq for p in outbox.pending("hook")], now_ms=10)
    for i in range(10):
        outbox.add(_new(f"new{i}", at_ms=100 + i), ["hook"])
    assert outbox.dropped() == 0  # the five delivered ones made room
    assert len(outbox.all_alerts()) == 10
    outbox.add(_new("overflow1"), ["hook"])
    outbox.add(_new("overflow2"), ["hook"])
    assert outbox.dropped() == 2
    assert [p.alert_id for p in outbox.pending("hook")][:2] == ["new2", "new3"]
    assert len(outbox.all_alerts()) == 10


def test_run_bookkeeping_tells_an_unclean_exit(outbox: Outbox) -> None:
    run, previous = outbox.begin_run(invocation_id="inv1", pid=10, now_ms=1)
    assert previous is None
    outbox.end_run(run, exit_code=0, now_ms=2)
    run2, previous = outbox.begin_run(invocation_id="inv2", pid=11, now_ms=3)
    assert previous is not None and previous.clean and previous.exit_code == 0
    # run2 never ends (SIGKILL)
    _, previous = outbox.begin_run(invocation_id="inv3", pid=12, now_ms=4)
    assert previous is not None and not previous.clean
    assert (previous.run, previous.invocation_id, previous.pid) == (run2, "inv2", 11)


def test_channel_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    path = outbox_path(tmp_path, "t")
    first, second = ChannelLock(path, "hook"), ChannelLock(path, "hook")
    other = ChannelLock(path, "tg")
    assert first.try_acquire()
    assert not second.try_acquire()  # flock: another open file description, same process
    assert other.try_acquire()  # channels are independent
    first.release()
    assert second.try_acquire()
    second.release()
    other.release()
