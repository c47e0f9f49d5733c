"""The etcd gateway of ``[cluster]``, with its credentials: for the election and for the
cluster line of ``trendbotd status`` (a light import: no trading parts)."""

from __future__ import annotations

from trendbotd.adapters.credentials import load_etcd_credentials
from trendbotd.adapters.etcd_gateway import EtcdGateway
from trendbotd.config import Config


def etcd_gateway(config: Config) -> EtcdGateway:
    """Raises CredentialsError when the etcd credentials cannot be read; sends nothing."""
    credentials = load_etcd_credentials(
        credentials_file=config.cluster.credentials_file,
        credential_name=config.cluster.credential_name,
    )
    return EtcdGateway(
        config.cluster.endpoints,
        timeout_s=config.cluster.rpc_timeout_s,
        ca_file=config.cluster.ca_file,
        credentials=credentials,
    )
