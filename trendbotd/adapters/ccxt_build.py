"""Building the ccxt client the adapter drives: the one exchange class imported alone, then
the client with our options, token-bucket pacing, weight governor and URL rewrite.

The only place that imports ccxt, and only when an adapter is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from trendbotd.adapters.ccxt_client import all_urls, client_class, rewrite_urls
from trendbotd.adapters.governor import GovernorSettings, WeightGovernor
from trendbotd.adapters.retry import TokenBucket
from trendbotd.core.clock import Clock
from trendbotd.errors import ConfigError

logger = logging.getLogger(__name__)

_import_lock = threading.Lock()
_EXCHANGE_ID = re.compile(r"^[a-z0-9]+$")


def load_exchange_class(exchange_id: str, *, single: bool = True) -> tuple[Any, Any]:
    """(ccxt exchange class, ccxt.base.errors module) for ``exchange_id``.

    ``import ccxt`` (and ``from ccxt.X import X``, which runs ``ccxt/__init__`` first)
    imports all ~100 exchanges. With ``single`` and ccxt not imported yet, a bare stand-in
    parent package is put in ``sys.modules`` just long enough to import ``ccxt.<id>`` and
    ``ccxt.base.errors``, then removed: a later ``import ccxt`` runs the real ``__init__``
    and reuses the same submodules (same classes). Falls back to the full import if that
    fails. Not for use while another thread may be importing ccxt.
    """
    if not _EXCHANGE_ID.match(exchange_id):
        raise ConfigError(f"exchange.id {exchange_id!r} is not a ccxt exchange id")
    with _import_lock:
        try:
            if single and "ccxt" not in sys.modules:
                module, errors = _import_single(exchange_id)
            else:
                module = importlib.import_module(f"ccxt.{exchange_id}")
                errors = importlib.import_module("ccxt.base.errors")
        except ModuleNotFoundError as e:
            if e.name in ("ccxt", f"ccxt.{exchange_id}"):
                raise ConfigError(f"exchange.id {exchange_id!r}: no such ccxt exchange") from e
            raise
    cls = getattr(module, exchange_id, None)
    if not isinstance(cls, type):
        raise ConfigError(f"exchange.id {exchange_id!r}: ccxt has no exchange class of that name")
    return cls, errors


def _import_single(exchange_id: str) -> tuple[Any, Any]:
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("ccxt is not installed", name="ccxt")
    stub = types.ModuleType("ccxt")
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules["ccxt"] = stub
    try:
        module = importlib.import_module(f"ccxt.{exchange_id}")
        errors = importlib.import_module("ccxt.base.errors")
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == f"ccxt.{exchange_id}":
            raise
        logger.warning("exchange.single_import_failed id=%s error=%s", exchange_id, e)
        for name in [m for m in sys.modules if m == "ccxt" or m.startswith("ccxt.")]:
            del sys.modules[name]  # start clean for the full import below
        module = importlib.import_module(f"ccxt.{exchange_id}")
        return module, importlib.import_module("ccxt.base.errors")
    finally:
        if sys.modules.get("ccxt") is stub:
            del sys.modules["ccxt"]
    return module, errors


def ccxt_config(
    *, api_key: str, api_secret: str, rate_limit: bool, timeout_s: float, recv_window_ms: int
) -> dict[str, Any]:
    """The ccxt client's own settings: our clock signs requests (no ``timeDifference``
    adjustment), no currency list is fetched."""
    return {
        "apiKey": api_key,
        "secret": api_secret,
        "enableRateLimit": rate_limit,
        "timeout": int(timeout_s * 1000),
        "options": {
            "fetchCurrencies": False,
            "adjustForTimeDifference": False,
            "recvWindow": recv_window_ms,
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    }


def build_client(
    exchange_id: str,
    config: dict[str, Any],
    *,
    clock: Clock,
    base_url: str | None,
    demo: bool,
    burst: int,
    single_import: bool,
    governor: GovernorSettings | None,
    offset_ms: Callable[[], int],
) -> tuple[Any, type[BaseException]]:
    """(the client, ccxt's base exception class). ``config``: see ``ccxt_config``;
    ``burst``: the token bucket's capacity in weight units; ``offset_ms``: the measured
    exchange clock offset, asked by the governor when it stamps a request."""
    base, errors = load_exchange_class(exchange_id, single=single_import)
    client = client_class(base, errors)(config)
    client.trendbot_clock = clock
    client.trendbot_bucket = TokenBucket(
        capacity=burst, per_s=1000 / float(client.rateLimit), now_ms=clock.now_ms()
    )
    if governor is not None:
        client.trendbot_governor = WeightGovernor(
            store=governor.store,
            limits=governor.limits,
            clock=clock,
            max_wait_s=governor.max_wait_s,
            offset_ms=offset_ms,
        )
    if demo:
        client.enable_demo_trading(True)
    if base_url:
        _redirect(client, base_url.rstrip("/"))
    logger.info(
        "exchange.created id=%s base_url=%s demo=%s recv_window_ms=%s rate_limit=%s",
        exchange_id,
        base_url.rstrip("/") if base_url else "<exchange default>",
        demo,
        config["options"]["recvWindow"],
        config["enableRateLimit"],
    )
    return client, errors.BaseError


def _redirect(client: Any, base_url: str) -> None:
    """Every API URL moved to ``base_url``; refuses to build a client that could leak."""
    client.trendbot_base_url = base_url
    for section in ("api", "test", "demo", "apiBackupDemoTrading"):
        if section in client.urls:
            client.urls[section] = rewrite_urls(client.urls[section], base_url)
    leaks = [u for u in all_urls(client.urls["api"]) if not u.startswith(base_url + "/")]
    if leaks:
        raise ConfigError(f"exchange.base_url: API URLs not redirected: {leaks}")


def time_url(client: Any, exchange_id: str) -> str | None:
    """Binance USD-M's GET /fapi/v1/time, for clock samples without ccxt's parsing."""
    time_base = client.urls["api"].get("fapiPublic") if exchange_id == "binanceusdm" else None
    return f"{time_base}/time" if isinstance(time_base, str) else None
