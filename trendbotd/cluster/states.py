"""The election state machine: STANDBY, LEADER, DEMOTED, driven by events, no I/O.

All times are on one monotonic clock. A LEADER may send orders only inside
``[trade_from, renew_sent_at + ttl - margin)``: ``trade_from`` is the acquisition plus the
margin (the previous holder's last signed orders must have expired at the exchange first).
Answers that arrive late never resurrect a leader: ``renewed`` outside LEADER is ignored.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from trendbotd.cluster.fencing import may_send


class Role(enum.Enum):
    STANDBY = "standby"
    LEADER = "leader"
    DEMOTED = "demoted"  # was leader; sends nothing; cleans up, then STANDBY


@dataclass(frozen=True, slots=True)
class Acquired:
    epoch: int  # the leader key's create_revision
    lease_id: int
    lease_sent_at: float  # when the lease grant was sent: its TTL runs from after this
    answered_at: float  # when the acquiring transaction answered


@dataclass(frozen=True, slots=True)
class Renewed:
    sent_at: float  # when the successful keepalive was sent
    answered_at: float  # when its answer was read (later than sent_at by the round trip)


@dataclass(frozen=True, slots=True)
class RenewalFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class LeaseLost:
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    now: float  # demotes a leader whose send window has closed


@dataclass(frozen=True, slots=True)
class Observed:
    node: str  # who holds the key, as a standby sees it
    epoch: int


@dataclass(frozen=True, slots=True)
class Rejoined:
    """The demoted node gave up its lease and waits as a standby again."""


Event = Acquired | Renewed | RenewalFailed | LeaseLost | Tick | Observed | Rejoined


@dataclass(frozen=True, slots=True)
class ElectionState:
    ttl_s: float
    margin_s: float
    role: Role = Role.STANDBY
    epoch: int = 0  # ours while LEADER/DEMOTED; the observed leader's while STANDBY
    lease_id: int = 0
    renew_sent_at: float | None = None
    trade_from: float = 0.0
    leader_node: str = ""  # the holder a standby last saw ("" = none)
    reason: str = ""  # why the last demotion happened

    def may_send(self, now: float) -> bool:
        if self.role is not Role.LEADER or now < self.trade_from:
            return False
        return may_send(now, self.renew_sent_at, self.ttl_s, self.margin_s)

    def deadline(self) -> float | None:
        """When the send window closes; None when not leading."""
        if self.role is not Role.LEADER or self.renew_sent_at is None:
            return None
        return self.renew_sent_at + self.ttl_s - self.margin_s


def apply(state: ElectionState, event: Event) -> ElectionState:  # noqa: PLR0911 - one per event
    """The state after ``event``. Events that do not apply to the role change nothing."""
    replace = dataclasses.replace
    if isinstance(event, Acquired):
        if state.role is not Role.STANDBY:
            return state
        return replace(
            state,
            role=Role.LEADER,
            epoch=event.epoch,
            lease_id=event.lease_id,
            renew_sent_at=event.lease_sent_at,
            trade_from=event.answered_at + state.margin_s,
            leader_node="",
            reason="",
        )
    if isinstance(event, Renewed):
        return _renewed(state, event)
    if isinstance(event, RenewalFailed | LeaseLost):
        if state.role is not Role.LEADER:
            return state
        kind = "lease lost" if isinstance(event, LeaseLost) else "renewal failed"
        return _demote(state, f"{kind}: {event.reason}")
    if isinstance(event, Tick):
        deadline = state.deadline()
        if deadline is not None and event.now >= deadline:
            return _demote(state, "no successful renewal within ttl - margin")
        return state
    if isinstance(event, Observed):
        if state.role is not Role.STANDBY:
            return state
        return replace(state, leader_node=event.node, epoch=event.epoch)
    if state.role is Role.DEMOTED:  # Rejoined
        return replace(state, role=Role.STANDBY, lease_id=0, leader_node="", epoch=0)
    return state


def _renewed(state: ElectionState, event: Renewed) -> ElectionState:
    if state.role is not Role.LEADER or state.renew_sent_at is None:
        return state
    # a renewal sent after the window closed is too late: the Tick demotes instead
    if not may_send(event.sent_at, state.renew_sent_at, state.ttl_s, state.margin_s):
        return _demote(state, "renewal came after the send window closed")
    renewed = max(state.renew_sent_at, event.sent_at)
    # an answer read only after the window it opens had closed (the process was frozen in
    # between) extends nothing: a node never reports leading with a closed window
    if not may_send(event.answered_at, renewed, state.ttl_s, state.margin_s):
        return _demote(state, "renewal answered after its send window closed")
    return dataclasses.replace(state, renew_sent_at=renewed)


def _demote(state: ElectionState, reason: str) -> ElectionState:
    return dataclasses.replace(state, role=Role.DEMOTED, renew_sent_at=None, reason=reason)


def status_prefix(state: ElectionState) -> str:
    """The start of systemd's STATUS=, telling leader and standby apart at a glance."""
    if state.role is Role.LEADER:
        return f"leader (epoch {state.epoch})"
    if state.role is Role.DEMOTED:
        return f"demoted ({state.reason})"
    if state.leader_node:
        return f"standby: leader {state.leader_node} (epoch {state.epoch})"
    return "standby: no leader"
