"""The election state machine, table-tested: no clock, no etcd."""

from __future__ import annotations

import pytest

from trendbotd.cluster.states import (
    Acquired,
    ElectionState,
    Event,
    LeaseLost,
    Observed,
    Rejoined,
    RenewalFailed,
    Renewed,
    Role,
    Tick,
    apply,
    status_prefix,
)

TTL, MARGIN = 30.0, 6.0
START = ElectionState(ttl_s=TTL, margin_s=MARGIN)
ACQ = Acquired(epoch=41, lease_id=7, lease_sent_at=100.0, answered_at=100.5)


def run(*events: Event) -> ElectionState:
    state = START
    for event in events:
        state = apply(state, event)
    return state


@pytest.mark.parametrize(
    ("events", "role", "epoch"),
    [
        ((), Role.STANDBY, 0),
        ((Observed("b", 9),), Role.STANDBY, 9),
        ((ACQ,), Role.LEADER, 41),
        ((ACQ, Renewed(105.0, 105.1)), Role.LEADER, 41),
        ((ACQ, RenewalFailed("timeout")), Role.DEMOTED, 41),
        ((ACQ, LeaseLost("no TTL")), Role.DEMOTED, 41),
        ((ACQ, Tick(123.9)), Role.LEADER, 41),
        ((ACQ, Tick(124.0)), Role.DEMOTED, 41),  # 100 + 30 - 6
        ((ACQ, Renewed(110.0, 110.1), Tick(133.9)), Role.LEADER, 41),
        ((ACQ, Renewed(125.0, 125.1)), Role.DEMOTED, 41),  # sent after the window closed
        # sent in time, answer read after the window it opens had closed (a frozen process)
        ((ACQ, Renewed(110.0, 134.0)), Role.DEMOTED, 41),
        ((ACQ, Renewed(110.0, 133.9)), Role.LEADER, 41),
        # a late answer never resurrects a leader
        ((ACQ, RenewalFailed("x"), Renewed(101.0, 101.1)), Role.DEMOTED, 41),
        ((ACQ, LeaseLost("x"), Rejoined(), Renewed(101.0, 101.1)), Role.STANDBY, 0),
        ((ACQ, LeaseLost("x"), Acquired(50, 8, 200.0, 200.1)), Role.DEMOTED, 41),
        ((ACQ, LeaseLost("x"), Rejoined(), Acquired(50, 8, 200.0, 200.1)), Role.LEADER, 50),
        ((ACQ, Observed("b", 99)), Role.LEADER, 41),
        ((ACQ, ACQ), Role.LEADER, 41),
        ((Renewed(100.0, 100.1), RenewalFailed("x"), LeaseLost("x"), Tick(1e9)), Role.STANDBY, 0),
    ],
)
def test_transitions(events: tuple[Event, ...], role: Role, epoch: int) -> None:
    state = run(*events)
    assert state.role is role
    assert state.epoch == epoch


@pytest.mark.parametrize(
    ("events", "now", "expected"),
    [
        ((), 100.0, False),
        ((ACQ,), 100.6, False),  # a new leader first waits out the margin
        ((ACQ,), 106.5, True),
        ((ACQ,), 123.99, True),
        ((ACQ,), 124.0, False),
        ((ACQ, Renewed(115.0, 115.1)), 138.9, True),
        (
            (ACQ, Renewed(115.0, 115.1), Renewed(110.0, 110.1)),
            138.9,
            True,
        ),  # an older answer never shortens
        ((ACQ, Renewed(115.0, 115.1)), 139.0, False),
        ((ACQ, RenewalFailed("x")), 106.5, False),
        ((ACQ, Tick(124.0)), 106.5, False),
    ],
)
def test_may_send(events: tuple[Event, ...], now: float, expected: bool) -> None:
    assert run(*events).may_send(now) is expected


def test_status_prefix() -> None:
    assert status_prefix(START) == "standby: no leader"
    assert status_prefix(run(Observed("host-b", 12))) == "standby: leader host-b (epoch 12)"
    assert status_prefix(run(ACQ)) == "leader (epoch 41)"
    demoted = run(ACQ, RenewalFailed("etcd unreachable"))
    assert status_prefix(demoted) == "demoted (renewal failed: etcd unreachable)"
    assert demoted.deadline() is None
    assert run(ACQ).deadline() == 124.0
