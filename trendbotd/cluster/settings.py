"""What the [cluster] table resolves to: defaults that depend on the instance and host."""

from __future__ import annotations

import socket

from trendbotd.cluster.fencing import Timing, table_timing
from trendbotd.config import Config


def leader_key(config: Config) -> str:
    """The etcd key the leader holds; one per instance name, shared by all its hosts."""
    return config.cluster.leader_key or f"/trendbotd/{config.instance.name}/leader"


def node_name(config: Config) -> str:
    return config.cluster.node_name or socket.gethostname()


def timing(config: Config) -> Timing:
    return table_timing(config.cluster, config.exchange)
