"""The fencing rule: when a leader may still send an order, and which timings are safe.

A lease renewed at ``t`` (the moment the renewal was *sent*) cannot expire on etcd before
``t + ttl``: etcd counts the TTL from when it received the keepalive, which is later.
An order signed at ``now`` with ``recvWindow`` is refused by the exchange (-1021) once
``serverTime - timestamp > recvWindow``; so a leader frozen right after its check can have a
late order executed at most ``recv_window + clock_bound`` after ``now``. Sending only while
``now < t + ttl - margin`` with ``margin >= recv_window + clock_bound + slack`` keeps every
accepted order inside the lease, and a new leader waits the same margin after acquiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trendbotd.config.model import ClusterConfig, ExchangeConfig


@dataclass(frozen=True, slots=True)
class Timing:
    ttl_s: float  # the lease TTL granted by etcd
    renew_s: float  # a renewal is sent this often
    rpc_timeout_s: float  # every etcd call gives up after this
    recv_window_ms: int  # orders are signed with this recvWindow
    clock_bound_ms: int  # |local clock - exchange clock| is kept below this
    slack_s: float  # scheduling, GC and request latency on top

    @property
    def margin_s(self) -> float:
        return self.recv_window_ms / 1000 + self.clock_bound_ms / 1000 + self.slack_s

    @property
    def send_window_s(self) -> float:
        """How long after a renewal was sent orders may go out."""
        return self.ttl_s - self.margin_s


def table_timing(cl: ClusterConfig, ex: ExchangeConfig) -> Timing:
    """The timing that the [cluster] and [exchange] tables give (what the config check
    validates and what the election runs with)."""
    return Timing(
        ttl_s=cl.ttl_s,
        renew_s=cl.renew_s,
        rpc_timeout_s=cl.rpc_timeout_s,
        recv_window_ms=cl.recv_window_ms,
        clock_bound_ms=ex.max_clock_offset_ms,
        slack_s=cl.slack_s,
    )


def may_send(now: float, renew_sent_at: float | None, ttl_s: float, margin_s: float) -> bool:
    """True while an order sent ``now`` cannot outlive the lease renewed at ``renew_sent_at``.

    ``renew_sent_at`` is the send time of the last renewal (or of the acquiring call) that
    succeeded; None means no lease is held. All times on one monotonic clock.
    """
    if renew_sent_at is None:
        return False
    return now < renew_sent_at + ttl_s - margin_s


def timing_problem(t: Timing) -> str | None:
    """Why these timings cannot be safe, in one line; None when they are.

    Patroni's rule on top of the margin: two RPC timeouts plus one renewal period must fit
    in what is left of the TTL, so one slow or failed renewal does not already stop trading.
    """
    if t.send_window_s <= 0:
        return (
            f"ttl_s {t.ttl_s:g} leaves no time to trade: the margin is {t.margin_s:g} s "
            f"(recv_window {t.recv_window_ms} ms + clock bound {t.clock_bound_ms} ms "
            f"+ slack {t.slack_s:g} s)"
        )
    needed = t.renew_s + 2 * t.rpc_timeout_s
    if needed > t.send_window_s:
        return (
            f"unsafe timing: renew_s + 2 * rpc_timeout_s = {needed:g} s must be at most "
            f"ttl_s - margin = {t.send_window_s:g} s (margin = recv_window "
            f"{t.recv_window_ms} ms + clock bound {t.clock_bound_ms} ms + slack {t.slack_s:g} s)"
        )
    return None
