"""The cluster gate in the executor: no create or cancel leaves a node outside its window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from orders_fakes import ORDERS_POLICY, T0, FakeExchange, stop_spec
from orders_fakes import entry_spec as entry

from trendbotd.cluster.states import Acquired, ElectionState, RenewalFailed, Renewed, apply
from trendbotd.core.clock import ManualClock
from trendbotd.core.records import IntentState
from trendbotd.errors import NotLeaderError
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.executor import OrderExecutor


class Node:
    """An election state on a hand-moved monotonic clock, as the executor's fence."""

    def __init__(self) -> None:
        self.now = 0.0
        self.state = ElectionState(ttl_s=30, margin_s=6)

    def fence(self) -> bool:
        return self.state.may_send(self.now)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(tmp_path / "bot.db")
    yield j
    j.close()


def make(fake: FakeExchange, journal: Journal, node: Node) -> OrderExecutor:
    return OrderExecutor(exchange=fake, journal=journal, clock=ManualClock(T0), instance="bot",
                         policy=ORDERS_POLICY, fence=node.fence)  # fmt: skip


def test_standby_sends_nothing_then_the_leader_sends_once(journal: Journal) -> None:
    fake, node = FakeExchange(), Node()
    executor = make(fake, journal, node)
    with pytest.raises(NotLeaderError, match="not the cluster leader"):
        executor.submit(entry())
    assert fake.calls == []
    stored = journal.orders.get_intent(executor.client_id(entry()))
    assert stored is not None
    assert stored.state is IntentState.PENDING
    assert stored.attempts == 0  # nothing left the host
    node.state = apply(node.state, Acquired(epoch=5, lease_id=1, lease_sent_at=0, answered_at=0))
    node.now = 3.0  # still inside the margin a new leader waits out
    with pytest.raises(NotLeaderError):
        executor.drive(stored, allow_resend=True)
    node.now = 6.0
    done = executor.drive(stored, allow_resend=True)
    assert done.state is IntentState.FILLED
    assert fake.accepted(done.client_order_id) == 1


def test_window_closes_without_renewal_and_after_a_failed_one(journal: Journal) -> None:
    fake, node = FakeExchange(), Node()
    executor = make(fake, journal, node)
    node.state = apply(node.state, Acquired(epoch=5, lease_id=1, lease_sent_at=0, answered_at=0))
    node.now = 23.9
    assert executor.submit(entry()).state is IntentState.FILLED
    stop = stop_spec()
    node.now = 24.0  # renewal sent at 0 + ttl 30 - margin 6
    with pytest.raises(NotLeaderError):
        executor.submit(stop)
    node.state = apply(node.state, Renewed(20.0, 20.1))
    live = executor.drive(journal.orders.get_intent(executor.client_id(stop)), allow_resend=True)  # type: ignore[arg-type]
    assert live.state is IntentState.ACKED
    node.state = apply(node.state, RenewalFailed("etcd unreachable"))
    with pytest.raises(NotLeaderError):
        executor.cancel(live, reason="test")
    assert len(fake.open_stops()) == 1  # the stop stays on the exchange
