"""Configuration: TOML (stdlib tomllib) validated into frozen, typed sections.

Every error names the file, the key and, where the key appears in the file, its line:
``/etc/trendbotd/trendbotd.toml:12: risk.risk_per_trade: expected a number, got "1%"``.
Unknown keys are errors: a typo must never silently fall back to a default.
Secrets never live here: the config only names where credentials are kept.

model.py holds the sections, load.py the parsing, checks.py the semantic checks.
"""

from trendbotd.config.load import load_alert_config, load_config
from trendbotd.config.model import (
    _INSTANCE_NAME,
    _TIMEFRAMES,
    DEFAULT_CONFIG_PATH,
    AlertChannelConfig,
    AlertsConfig,
    ClusterConfig,
    Config,
    ExchangeConfig,
    InstanceConfig,
    LogLevel,
    MetricsConfig,
    PaperConfig,
    RateLimitConfig,
    Regime,
    RiskConfig,
    ServiceConfig,
    ShutdownPolicy,
    StrategyKind,
    StrategyParams,
    TradingConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "_INSTANCE_NAME",
    "_TIMEFRAMES",
    "AlertChannelConfig",
    "AlertsConfig",
    "ClusterConfig",
    "Config",
    "ExchangeConfig",
    "InstanceConfig",
    "LogLevel",
    "MetricsConfig",
    "PaperConfig",
    "RateLimitConfig",
    "Regime",
    "RiskConfig",
    "ServiceConfig",
    "ShutdownPolicy",
    "StrategyKind",
    "StrategyParams",
    "TradingConfig",
    "load_alert_config",
    "load_config",
]
