"""The simulated exchange's rate limits: Binance's weights, headers, 429 and 418."""

from __future__ import annotations

import pytest

from trendbotd.sim.ratelimit import WeightLimiter, request_weight


class _Now:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.mark.parametrize(
    ("path", "params", "base", "weight"),
    [
        ("/fapi/v1/klines", {"limit": "99"}, 5, 1),
        ("/fapi/v1/klines", {"limit": "100"}, 5, 2),
        ("/fapi/v1/klines", {}, 5, 5),  # Binance's default limit is 500
        ("/fapi/v1/klines", {"limit": "1500"}, 5, 10),
        ("/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, 1, 1),
        ("/fapi/v1/openOrders", {}, 1, 40),
        ("/fapi/v3/account", {}, 5, 5),
    ],
)
def test_request_weight_follows_binance(
    path: str, params: dict[str, str], base: int, weight: int
) -> None:
    assert request_weight(path, params, base=base) == weight


def test_headers_count_weight_per_window_and_orders_per_account() -> None:
    now = _Now(60_000 * 100)
    limiter = WeightLimiter(limit_per_minute=100, now_ms=now)
    assert limiter.admit(5, order=False).headers == {"X-MBX-USED-WEIGHT-1M": "5"}
    order = limiter.admit(0, order=True)
    assert order.headers == {
        "X-MBX-USED-WEIGHT-1M": "5",
        "X-MBX-ORDER-COUNT-10S": "1",
        "X-MBX-ORDER-COUNT-1M": "1",
    }
    now.ms += 60_000  # the next minute starts from zero
    assert limiter.admit(1, order=False).headers["X-MBX-USED-WEIGHT-1M"] == "1"


def test_over_the_limit_429_with_retry_after_until_the_window_ends() -> None:
    now = _Now(60_000 * 100 + 45_500)  # 14.5 s before the minute rolls over
    limiter = WeightLimiter(limit_per_minute=10, now_ms=now)
    assert limiter.admit(10, order=False).status == 200
    refused = limiter.admit(1, order=False)
    assert (refused.status, refused.retry_after_s) == (429, 15)
    assert refused.headers["Retry-After"] == "15"
    now.ms += 15_000  # waited as told: a new minute, no ban
    assert limiter.admit(1, order=False).status == 200
    assert limiter.bans == 0


def test_sending_during_the_429_backoff_is_an_ip_ban_that_grows() -> None:
    now = _Now(60_000 * 100)
    limiter = WeightLimiter(limit_per_minute=10, ban_ms=120_000, now_ms=now)
    limiter.admit(11, order=False)  # 429
    now.ms += 500  # still in flight when the 429 went out: forgiven
    assert limiter.admit(1, order=False).status == 429
    now.ms += 1_000
    banned = limiter.admit(1, order=False)
    assert (banned.status, banned.retry_after_s) == (418, 120)
    now.ms += 60_000
    assert limiter.admit(1, order=False).status == 418  # a new minute does not lift a ban
    assert limiter.admit(1, order=False).retry_after_s == 60
    now.ms += 60_000
    limiter.admit(11, order=False)  # 429 again
    now.ms += 2_000
    assert limiter.admit(1, order=False).retry_after_s == 240  # the second ban doubles
    assert limiter.bans == 2


def test_order_count_limit_per_10s() -> None:
    now = _Now(60_000 * 100)
    limiter = WeightLimiter(limit_per_minute=100, orders_per_10s=2, now_ms=now)
    assert [limiter.admit(0, order=True).status for _ in range(2)] == [200, 200]
    refused = limiter.admit(0, order=True)
    assert (refused.status, refused.order_limit, refused.retry_after_s) == (429, "10s", 10)
    assert refused.headers["X-MBX-ORDER-COUNT-10S"] == "3"
    now.ms += 10_000
    assert limiter.admit(0, order=True).status == 200


def test_limit_zero_switches_limits_off() -> None:
    limiter = WeightLimiter(limit_per_minute=0, now_ms=_Now(0))
    assert all(limiter.admit(1000, order=False).status == 200 for _ in range(5))
