"""The cluster line of ``trendbotd status``: who holds the leader key, asked of etcd."""

from __future__ import annotations

from trendbotd.adapters.credentials import load_etcd_credentials
from trendbotd.adapters.etcd_gateway import EtcdGateway
from trendbotd.cluster import settings
from trendbotd.config import Config
from trendbotd.errors import ClusterError, CredentialsError


def cluster_line(config: Config) -> str:
    node = settings.node_name(config)
    try:
        credentials = load_etcd_credentials(
            credentials_file=config.cluster.credentials_file,
            credential_name=config.cluster.credential_name,
        )
        gateway = EtcdGateway(
            config.cluster.endpoints,
            timeout_s=config.cluster.rpc_timeout_s,
            ca_file=config.cluster.ca_file,
            credentials=credentials,
        )
        holder = gateway.get(settings.leader_key(config))
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
