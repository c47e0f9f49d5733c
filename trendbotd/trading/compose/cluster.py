"""The cluster side of the composition: the election over the etcd gateway, and the
cluster runner that starts a trading runner (from the same root) once it leads."""

from __future__ import annotations

import logging
from collections.abc import Callable

from trendbotd.alerts.sink import AlertSink
from trendbotd.cluster import settings
from trendbotd.cluster.election import Election
from trendbotd.cluster.runner import ClusterRunner
from trendbotd.config import Config
from trendbotd.core.ports import Notifier
from trendbotd.trading.compose.etcd import etcd_gateway
from trendbotd.trading.compose.root import trading_runner
from trendbotd.trading.runner import TradingRunner

logger = logging.getLogger(__name__)


def open_election(config: Config) -> Election:
    """This node's election over the etcd endpoints (no request sent yet)."""
    gateway = etcd_gateway(config)
    node = settings.node_name(config)
    election = Election(
        gateway,
        key=settings.leader_key(config),
        node=node,
        timing=settings.timing(config),
        poll_s=min(config.cluster.renew_s, 1.0),
    )
    logger.info(
        "cluster.joined node=%s key=%s endpoints=%s",
        node,
        settings.leader_key(config),
        ",".join(config.cluster.endpoints),
    )
    return election


def cluster_runner(
    config: Config, *, notifier: Notifier, alerts: AlertSink | None = None
) -> ClusterRunner:
    def trader(config: Config, fence: Callable[[], bool]) -> TradingRunner:
        runner, _ = trading_runner(config, notifier=notifier, fence=fence, alerts=alerts)
        return runner

    return ClusterRunner(config, notifier=notifier, open_election=open_election, trader=trader)
