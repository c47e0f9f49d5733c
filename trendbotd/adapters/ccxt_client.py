"""The ccxt client subclass the adapter drives (built from a given class: no ccxt import).

- ``nonce``: request timestamps are the daemon clock plus the measured exchange offset.
- ``get_exceptions_by_url``: Binance picks its per-market error table by host name; with
  ``base_url`` (simulator, proxy) the path decides instead, so -2022/-4116/-2019/-4164 keep
  their classes on 127.0.0.1.
- ``handle_errors``/``handle_http_status_code``: tag raised exceptions with the HTTP status,
  the exchange's code and Retry-After (read by ccxt_errors.facts_of); a 5xx ccxt has no
  class for still raises ExchangeNotAvailable.
- ``throttle``: token-bucket pacing (retry.TokenBucket) instead of ccxt's fixed sleep.
- ``fetch``/``on_rest_response``: every request asks the weight governor first (with the
  priority the adapter set in ``trendbot_request``) and every answer reports the exchange's
  counts and any 429/418 back to it.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from trendbotd.adapters.ccxt_errors import ATTR_CODE, ATTR_RETRY_AFTER, ATTR_STATUS
from trendbotd.adapters.governor import NullGovernor, header_int
from trendbotd.adapters.retry import retry_after_seconds
from trendbotd.adapters.weight_budget import Priority
from trendbotd.core import telemetry

# Binance path prefix -> the key of its error table in ``exceptions``.
_MARKET_TYPE_BY_PATH = (
    ("/fapi/", "linear"),
    ("/futures/", "linear"),
    ("/dapi/", "inverse"),
    ("/eapi/", "option"),
    ("/papi/", "portfolioMargin"),
    ("/sapi/", "spot"),
    ("/api/", "spot"),
)


def _tag(client: Any, exc: BaseException, status: Any, headers: Any, response: Any) -> None:
    """Record what the reply said on the ccxt exception, for ccxt_errors.facts_of."""
    if isinstance(status, int) and getattr(exc, ATTR_STATUS, None) is None:
        setattr(exc, ATTR_STATUS, status)
    if isinstance(response, dict) and getattr(exc, ATTR_CODE, None) is None:
        # No numeric code in the reply: facts_of falls back to the text.
        with contextlib.suppress(TypeError, ValueError):
            setattr(exc, ATTR_CODE, int(response.get("code")))  # type: ignore[arg-type]
    if headers is not None and getattr(exc, ATTR_RETRY_AFTER, None) is None:
        seconds = retry_after_seconds(headers, now_ms=client.trendbot_clock.now_ms())
        if seconds is not None:
            setattr(exc, ATTR_RETRY_AFTER, seconds)


def client_class(base: type, errors: Any) -> Any:
    """``base`` with our nonce, pacing, governor hooks, loopback error table and tagged
    exceptions, and the per-client state they keep."""
    namespace: dict[str, Any] = {
        "trendbot_request": (Priority.SYNC, False),
        "trendbot_cost": None,
        "trendbot_sent_ms": 0,
        "trendbot_admitted_ms": None,
        "trendbot_governor": NullGovernor(),
        "trendbot_base_url": "",
        "trendbot_offset_ms": 0,
        "nonce": _nonce,
        "throttle": _throttle,
        "trendbot_admit": _trendbot_admit,
        **_request_overrides(base),
        **_error_overrides(base, errors),
    }
    return type(f"Trendbot{base.__name__}", (base,), namespace)


def _nonce(self: Any) -> int:
    return int(self.trendbot_clock.now_ms()) + int(self.trendbot_offset_ms)


def _throttle(self: Any, cost: Any = None) -> None:
    # ccxt's own throttle sleeps cost x rateLimit before every request (no burst).
    delay = self.trendbot_bucket.reserve(float(cost or 1), now_ms=self.trendbot_clock.now_ms())
    if delay > 0:
        self.trendbot_clock.sleep(delay)


def _trendbot_admit(self: Any, priority: Priority, *, weight: int) -> None:
    """Ask the governor now for the next request (a clock sample: no wait may fall inside
    the round trip it measures)."""
    self.trendbot_admitted_ms = self.trendbot_governor.acquire(priority, weight=weight, orders=0)


def _request_overrides(base: type) -> dict[str, Any]:
    """Every request asks the weight governor first and reports its answer back to it."""

    def fetch2(  # noqa: PLR0917 - ccxt's own signature, called positionally
        self: Any, path: Any, api: Any = "public", method: str = "GET", params: Any = None,
        config: Any = None,
    ) -> Any:  # fmt: skip
        params, config = params or {}, config or {}
        self.trendbot_cost = self.calculate_rate_limiter_cost(api, method, path, params, config)
        return base.fetch2(self, path, api, method, params, config)  # type: ignore[attr-defined]

    def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        priority, is_order = self.trendbot_request
        cost, self.trendbot_cost = self.trendbot_cost, None
        # Binance USD-M: a new order weighs 0 on the IP limit and 1 on the account's order
        # counts; anything else weighs what ccxt's endpoint table says (Binance's weights).
        weight = 0 if is_order else max(1, int(cost or 1))
        admitted, self.trendbot_admitted_ms = self.trendbot_admitted_ms, None
        if admitted is None:
            admitted = self.trendbot_governor.acquire(
                priority, weight=weight, orders=1 if is_order else 0
            )
        self.trendbot_sent_ms = admitted
        telemetry.exchange_request()
        return base.fetch(self, *args, **kwargs)  # type: ignore[attr-defined]

    def on_rest_response(self: Any, *args: Any) -> Any:
        # (code, reason, url, method, response_headers, response_body, request_headers, body)
        code, headers = args[0], args[4]
        retry_after = retry_after_seconds(headers, now_ms=self.trendbot_clock.now_ms())
        telemetry.exchange_answer(used_weight=header_int(headers, "x-mbx-used-weight-1m"))
        if isinstance(code, int):
            self.trendbot_governor.observe(
                status=code, headers=headers, retry_after_s=retry_after,
                sent_ms=self.trendbot_sent_ms,
            )  # fmt: skip
        return base.on_rest_response(self, *args)  # type: ignore[attr-defined]

    return {"fetch2": fetch2, "fetch": fetch, "on_rest_response": on_rest_response}


def _error_overrides(base: type, errors: Any) -> dict[str, Any]:
    """Exceptions tagged with what the reply said, Binance's error table kept on loopback."""

    def get_exceptions_by_url(self: Any, url: str | None, exactOrBroad: str) -> Any:  # noqa: N803
        prefix = self.trendbot_base_url
        if prefix and url and url.startswith(prefix + "/"):
            path = url[len(prefix) :]
            for head, market_type in _MARKET_TYPE_BY_PATH:
                if path.startswith(head):
                    table = self.safe_dict(self.exceptions, market_type, {})
                    return self.safe_dict(table, exactOrBroad, {})
            return {}
        return base.get_exceptions_by_url(self, url, exactOrBroad)  # type: ignore[attr-defined]

    # ccxt calls these positionally: (code, reason, url, method, headers, body, response,
    # request_headers, request_body) and (code, reason, url, method, body).
    def handle_errors(self: Any, *args: Any) -> Any:
        try:
            return base.handle_errors(self, *args)  # type: ignore[attr-defined]
        except errors.BaseError as e:
            _tag(self, e, args[0], args[4], args[6])
            raise

    def handle_http_status_code(self: Any, *args: Any) -> None:
        code, reason, url, method = args[:4]
        try:
            base.handle_http_status_code(self, *args)  # type: ignore[attr-defined]
        except errors.BaseError as e:
            _tag(self, e, code, None, None)
            raise
        if isinstance(code, int) and code >= 500:  # a 5xx ccxt has no class for
            error = errors.ExchangeNotAvailable(f"{self.id} {method} {url} {code} {reason}")
            _tag(self, error, code, None, None)
            raise error

    overrides: dict[str, Any] = {
        "handle_errors": handle_errors,
        "handle_http_status_code": handle_http_status_code,
    }
    if hasattr(base, "get_exceptions_by_url"):
        overrides["get_exceptions_by_url"] = get_exceptions_by_url
    return overrides


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every URL string in ``urls`` (nested dicts included) moved to ``base_url``."""
    if isinstance(urls, str):
        return base_url + urlsplit(urls).path if "://" in urls else urls
    if isinstance(urls, dict):
        return {k: rewrite_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, list):
        return [rewrite_urls(v, base_url) for v in urls]
    return urls


def all_urls(urls: Any) -> list[str]:
    if isinstance(urls, str):
        return [urls]
    if isinstance(urls, dict):
        return [u for v in urls.values() for u in all_urls(v)]
    if isinstance(urls, list):
        return [u for v in urls for u in all_urls(v)]
    return []
