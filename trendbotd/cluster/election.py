"""The election loop: take the leader key under a lease, renew it, demote when in doubt.

Acquire: grant a lease, then create the key only if absent (create_revision == 0), bound
to that lease; the key's create_revision is the epoch. Renew every ``renew_s`` counted from
when the last renewal was *sent* (the safe side: etcd's TTL starts after that). Any failed
renewal, a lost lease or a closed send window demotes; the demoted node revokes its lease
(best effort, so a standby need not wait out the TTL) and waits as a standby.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from trendbotd.adapters.etcd_gateway import EtcdGateway
from trendbotd.cluster.fencing import Timing
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
)
from trendbotd.errors import ClusterError, LeaseLostError

logger = logging.getLogger(__name__)

Listener = Callable[[ElectionState, ElectionState], None]


class Election:
    """One node's side of the election. ``may_send()`` is safe to call from any thread."""

    def __init__(
        self,
        gateway: EtcdGateway,
        *,
        key: str,
        node: str,
        timing: Timing,
        poll_s: float | None = None,  # a standby looks at the key this often
        clock: Callable[[], float] = time.monotonic,
        listener: Listener | None = None,
    ) -> None:
        self._gateway = gateway
        self._key = key
        self._node = node
        self._timing = timing
        self._poll_s = poll_s if poll_s is not None else timing.renew_s
        self._clock = clock
        self._listener = listener
        self._lock = threading.Lock()
        self._state = ElectionState(ttl_s=timing.ttl_s, margin_s=timing.margin_s)

    @property
    def state(self) -> ElectionState:
        with self._lock:
            return self._state

    def clock(self) -> float:
        """The election's monotonic clock (the one its deadlines are on)."""
        return self._clock()

    def may_send(self) -> bool:
        """True only while an order signed now cannot outlive this node's leadership."""
        return self.state.may_send(self._clock())

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then give the lease up so a standby takes over."""
        try:
            while not stop.is_set():
                stop.wait(max(0.0, self.step()))
        finally:
            self.resign()

    def step(self) -> float:
        """One pass; how long to wait before the next."""
        self._apply(Tick(self._clock()))
        role = self.state.role
        if role is Role.DEMOTED:
            self._revoke(self.state.lease_id)
            self._apply(Rejoined())
            return 0.0
        if role is Role.STANDBY:
            return self._standby_step()
        return self._leader_step()

    def resign(self) -> None:
        """Stop leading now (shutdown): demote first, then revoke so the key goes at once."""
        state = self.state
        if state.role is Role.LEADER:
            self._apply(RenewalFailed("resigned"))
            self._revoke(state.lease_id)
            self._apply(Rejoined())

    def _standby_step(self) -> float:
        try:
            current = self._gateway.get(self._key)
            if current is not None:
                self._observe(current.value, current.create_revision)
                return self._poll_s
            lease_sent_at = self._clock()
            lease = self._gateway.grant(int(self._timing.ttl_s))
        except ClusterError as e:
            logger.warning("cluster.standby_error %s", e)
            return self._poll_s
        try:
            result = self._gateway.create_if_absent(self._key, self._node.encode(), lease.id)
        except ClusterError as e:
            # it may have been created anyway: the lease expires unrenewed, or goes now
            logger.warning("cluster.acquire_error %s", e)
            self._revoke(lease.id)
            return self._poll_s
        answered_at = self._clock()
        current = result.current
        if result.created and current is not None and current.lease == lease.id:
            self._apply(Acquired(current.create_revision, lease.id, lease_sent_at, answered_at))
            return 0.0
        self._revoke(lease.id)
        if current is not None:
            self._observe(current.value, current.create_revision)
        return self._poll_s

    def _leader_step(self) -> float:
        state = self.state
        assert state.renew_sent_at is not None
        now = self._clock()
        due = state.renew_sent_at + self._timing.renew_s
        if now < due:
            deadline = state.deadline()
            return min(due, deadline if deadline is not None else due) - now
        sent_at = self._clock()
        try:
            self._gateway.keepalive(state.lease_id)
        except LeaseLostError as e:
            self._apply(LeaseLost(str(e)))
            return 0.0
        except ClusterError as e:
            self._apply(RenewalFailed(str(e)))
            return 0.0
        self._apply(Renewed(sent_at, answered_at=self._clock()))
        return 0.0

    def _observe(self, value: bytes, epoch: int) -> None:
        self._apply(Observed(value.decode("utf-8", "replace"), epoch))

    def _revoke(self, lease_id: int) -> None:
        if not lease_id:
            return
        try:
            self._gateway.revoke(lease_id)
        except ClusterError as e:
            logger.info("cluster.revoke_failed lease=%x %s (it expires by itself)", lease_id, e)

    def _apply(self, event: Event) -> None:
        with self._lock:
            old = self._state
            new = apply(old, event)
            self._state = new
        if new == old:  # a standby polling an unchanged key says nothing
            return
        if new.role is not old.role:
            if new.role is Role.LEADER:
                logger.warning("cluster.leader node=%s epoch=%d", self._node, new.epoch)
            elif new.role is Role.DEMOTED:
                logger.warning("cluster.demoted epoch=%d reason=%s", new.epoch, new.reason)
            else:
                logger.info("cluster.standby node=%s", self._node)
        if self._listener is not None:
            self._listener(old, new)
