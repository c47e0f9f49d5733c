"""The cluster line of ``trendbotd status``: who holds the leader key, asked of etcd."""

from __future__ import annotations

from trendbotd.cluster import settings
from trendbotd.config import Config
from trendbotd.errors import ClusterError, CredentialsError
from trendbotd.trading.compose.etcd import etcd_gateway


def cluster_line(config: Config) -> str:
    node = settings.node_name(config)
    try:
        holder = etcd_gateway(config).get(settings.leader_key(config))
    except CredentialsError as e:
        return f"cluster: cannot read the etcd credentials: {e}"
    except ClusterError as e:
        return f"cluster: etcd unreachable: {e}"
    if holder is None:
        return f"cluster: no leader (this node: {node})"
    leader = holder.value.decode("utf-8", "replace")
    if leader == node:
        return f"cluster: leader (epoch {holder.create_revision}) is this node ({node})"
    return f"cluster: standby: leader {leader} (epoch {holder.create_revision}), this node {node}"
