"""The configuration's frozen, typed sections and their defaults (loaded by load.py,
checked by checks.py)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

DEFAULT_CONFIG_PATH = Path("/etc/trendbotd/trendbotd.toml")

_INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")

ShutdownPolicy = Literal["leave", "cancel_entries", "flatten"]
StrategyKind = Literal["ema_cross", "donchian"]
Regime = Literal["trend", "range", "mixed"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    name: str = "trendbotd"  # names the lock file, the journal and the log identifier
    runtime_dir: Path | None = None  # lock lives here; default /run/trendbotd with fallbacks
    state_dir: Path | None = None  # journal lives here; default /var/lib/trendbotd with fallbacks


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    id: str = "binanceusdm"
    paper: bool = True  # start the built-in simulated exchange in-process and trade on it
    base_url: str = ""  # point every API entry at this host (simulator, proxy, tests)
    demo: bool = False  # Binance demo trading hosts
    credentials_file: Path | None = None  # TOML with api_key/api_secret, mode 0600 or stricter
    credential_name: str = ""  # name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    max_clock_offset_ms: int = 500  # refuse orders while |offset| or its uncertainty exceed it
    clock_resync_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The request-weight governor (live trading; the paper simulator is local)."""

    weight_limit: int = 2400  # the exchange's request weight per window and IP (USD-M: 2400)
    orders_per_10s: int = 300  # the account's new orders per 10 s
    orders_per_minute: int = 1200
    window_s: float = 60.0  # the exchange's weight window (Binance: one minute)
    share: float = 0.8  # below this share of each limit every request goes
    urgent_share: float = 0.95  # protective stops and closes may go up to this share
    max_wait_s: float = 5.0  # longest in-line wait; longer: held back, retried later
    # Budget shared by every instance on the host (Binance counts per IP); default:
    # ratelimit-<exchange>-<host>.json in the runtime directory, beside the lock.
    shared_file: Path | None = None


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """The simulated exchange started by ``--paper`` (or ``exchange.paper = true``)."""

    speed: float = 1.0  # replay candles this many times faster than real time
    seed: int = 1
    regime: Regime = "mixed"
    data_csv: Path | None = None  # real candles instead of the generator
    start_balance: Decimal = Decimal(10000)
    response_delay_ms: int = 0  # delay every answer (shows that READY waits for the sync)
    port: int = 0  # 0 picks a free port on 127.0.0.1


@dataclass(frozen=True, slots=True)
class StrategyParams:
    kind: StrategyKind = "ema_cross"
    fast: int = 20
    slow: int = 50
    breakout: int = 55  # donchian entry channel
    exit_breakout: int = 20  # donchian exit channel
    atr_period: int = 14
    atr_stop_mult: float = 2.0  # initial stop distance in ATRs
    trail_mult: float = 3.0  # trailing exit distance in ATRs
    # Trend filter: enter only when the efficiency ratio (net move / path length) over
    # this many bars reaches min_efficiency; 0 disables it. Exits are never filtered.
    efficiency_period: int = 150
    min_efficiency: float = 0.15
    allow_short: bool = True


@dataclass(frozen=True, slots=True)
class TradingConfig:
    symbols: tuple[str, ...] = ("BTC/USDT:USDT",)
    timeframe: str = "1h"
    leverage: int = 3


@dataclass(frozen=True, slots=True)
class RiskConfig:
    risk_per_trade: float = 0.01  # fraction of equity lost if the initial stop is hit
    max_leverage: int = 5
    max_notional: Decimal = Decimal(50000)
    max_open_positions: int = 3
    daily_loss_limit: float = 0.05  # fraction of start-of-day equity; kill switch for entries
    duplicate_window_s: float = 60.0
    max_position_ratio: float = 2.0  # position above this multiple of expected blocks adding
    min_balance: Decimal = Decimal(10)  # below this the balance is implausible: no new entries
    # A position found without a stop (and no known stop price) gets one this far from
    # the mark, on the losing side, before READY.
    emergency_stop_distance: float = 0.05
    shutdown_policy: ShutdownPolicy = "leave"
    reduce_only: bool = False  # operator switch: manage exits only


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    startup_timeout_s: float = 90.0  # keep below the unit's TimeoutStartSec
    log_level: LogLevel = "info"
    log_file: Path | None = None  # --daemon mode; default is syslog
    # Between candles the loop re-syncs (positions, stops, balance) this often; a candle
    # close wakes it on time regardless.
    tick_interval_s: float = 60.0


AlertChannelKind = Literal["webhook", "telegram"]
SeverityName = Literal["info", "warning", "error", "critical"]


@dataclass(frozen=True, slots=True)
class AlertChannelConfig:
    """``[alerts.channels.NAME]``. The secret (webhook URL, bot token) is never here: it is
    read from ``secret_file`` (mode 0600) or ``$CREDENTIALS_DIRECTORY/<secret_name>``."""

    name: str = ""
    kind: AlertChannelKind = "webhook"
    min_severity: SeverityName = "warning"
    secret_file: Path | None = None  # TOML: url = "..." (webhook) / bot_token = "..." (telegram)
    secret_name: str = ""  # systemd LoadCredential= name
    base_url: str = "https://api.telegram.org"  # telegram: the Bot API host (tests: a fake)
    chat_id: str = ""  # telegram: the chat to write to


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    outbox_max: int = 1000  # alerts kept; beyond it the oldest go (delivered ones first)
    send_timeout_s: float = 10.0  # one HTTP request to a channel
    retry_base_s: float = 2.0  # back-off after a failed send: 2, 4, 8 ... s
    retry_max_s: float = 300.0
    rate_limit: int = 20  # messages per channel per rate_window_s
    rate_window_s: float = 60.0
    coalesce_window_s: float = 60.0  # repeats waiting this close together become one message
    stop_flush_s: float = 3.0  # at stop, wait this long for pending alerts to go out
    unreachable_alert_s: float = 300.0  # exchange unreachable this long: one alert, then "back"
    channels: tuple[AlertChannelConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus exposition (trendbotd.adapters.metrics); changes need a restart."""

    listen: str = ""  # "127.0.0.1:9464" serves /metrics there; empty: off
    allow_non_loopback: bool = False  # metrics name positions and equity: loopback only


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Active/standby across hosts through a leader key in etcd. Off without endpoints."""

    endpoints: tuple[str, ...] = ()  # etcd client URLs, e.g. "http://10.0.0.1:2379"
    leader_key: str = ""  # default: /trendbotd/<instance.name>/leader
    node_name: str = ""  # default: the host name
    ttl_s: int = 30  # lease TTL (etcd counts whole seconds)
    renew_s: float = 5.0  # renew the lease this often, counted from when it was sent
    rpc_timeout_s: float = 2.0  # every etcd call gives up after this
    recv_window_ms: int = 3000  # orders are signed with this recvWindow while clustered
    slack_s: float = 2.5  # margin on top of recv_window and the clock bound
    ca_file: Path | None = None  # CA bundle for https:// endpoints
    # etcd user/password (TOML: user, password), never in this file:
    credentials_file: Path | None = None  # mode 0600 or stricter
    credential_name: str = ""  # name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None = None  # the file it came from; None for built-in defaults
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)
    strategy: StrategyParams = field(default_factory=StrategyParams)
    # per-symbol overrides: [strategy.symbols."ETH/USDT:USDT"] fast = 10
    strategy_overrides: dict[str, StrategyParams] = field(default_factory=dict)
    risk: RiskConfig = field(default_factory=RiskConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def strategy_for(self, symbol: str) -> StrategyParams:
        return self.strategy_overrides.get(symbol, self.strategy)

    def describe(self) -> str:
        """One line per setting for the start-up log. Holds no secrets by construction."""
        lines = [f"config.source={self.source or '<built-in defaults>'}"]
        sections = ("instance", "exchange", "ratelimit", "paper", "trading", "strategy")
        for name in (*sections, "risk", "service", "alerts", "metrics", "cluster"):
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                lines.append(f"config.{name}.{f.name}={getattr(section, f.name)!s}")
        for symbol, params in sorted(self.strategy_overrides.items()):
            lines.append(f"config.strategy.symbols.{symbol}={params}")
        return "\n".join(lines)


SECTIONS: dict[str, type[Any]] = {  # [table] -> its section
    "instance": InstanceConfig,
    "exchange": ExchangeConfig,
    "ratelimit": RateLimitConfig,
    "paper": PaperConfig,
    "trading": TradingConfig,
    "strategy": StrategyParams,
    "risk": RiskConfig,
    "service": ServiceConfig,
    "alerts": AlertsConfig,
    "metrics": MetricsConfig,
    "cluster": ClusterConfig,
}
