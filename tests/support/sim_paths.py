"""Reading the simulated exchange's price path ahead of its clock."""

from __future__ import annotations

from decimal import Decimal

from trendbotd.sim import SimExchange


def limit_the_path_reaches(sim: SimExchange, t0: int, t1: int) -> tuple[str, Decimal]:
    """A BTCUSDT limit order (side, price) that rests at t0 and fills on the path before t1."""
    spec = sim.state.specs["BTCUSDT"]
    now = float(sim.state.price("BTC/USDT:USDT", t0))
    path = [p for piece in sim.state.tapes["BTCUSDT"].pieces(t0, t1) for p in (piece.p0, piece.p1)]
    low, high = min(path), max(path)
    if now - low > high - now:
        return "buy", spec.round_price((now + low) / 2)
    return "sell", spec.round_price((now + high) / 2)
