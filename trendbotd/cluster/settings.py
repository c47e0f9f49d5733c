"""What the [cluster] table resolves to: defaults that depend on the instance and host."""

from __future__ import annotations

import socket

from trendbotd.cluster.fencing import Timing
from trendbotd.config import Config


def leader_key(config: Config) -> str:
    """The etcd key the leader holds; one per instance name, shared by all its hosts."""
    return config.cluster.leader_key or f"/trendbotd/{config.instance.name}/leader"


def node_name(config: Config) -> str:
    return config.cluster.node_name or socket.gethostname()


def timing(config: Config) -> Timing:
    cl = config.cluster
    return Timing(
        ttl_s=cl.ttl_s,
        renew_s=cl.renew_s,
        rpc_timeout_s=cl.rpc_timeout_s,
        recv_window_ms=cl.recv_window_ms,
        clock_bound_ms=config.exchange.max_clock_offset_ms,
        slack_s=cl.slack_s,
    )
