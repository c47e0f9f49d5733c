"""The /sim/ control API: the Python test helpers over HTTP (JSON in, JSON out, no auth).

GET    /sim/state                      time, wallet, positions, open orders and algo orders
GET    /sim/requests[?since=N]         recorded requests from index N
DELETE /sim/requests                   forget recorded requests
GET    /sim/faults | POST (Fault JSON) | DELETE
POST   /sim/skew       {"skew_ms": 20000}  (any time: a clock that jumps mid-run)
POST   /sim/visibility_delay {"delay_ms": 3000, "conditional": false}
POST   /sim/price      {"symbol": "BTCUSDT", "price": "30000" | null}
POST   /sim/position   {"symbol": ..., "amount": "0.01", "entry_price": "30000"}
POST   /sim/balance    {"balance": "10000"}
POST   /sim/hedge_mode {"enabled": true}   POST /sim/multi_assets {"enabled": true}
POST   /sim/clock/advance {"ms": 3600000}  (only with a clock that can be advanced)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from trendbotd.sim.errors import SimError
from trendbotd.sim.faults import Fault
from trendbotd.sim.ports import ControlTarget

Action = Callable[[dict[str, Any], dict[str, list[str]]], Any]

logger = logging.getLogger(__name__)


class ControlAPI:
    def __init__(self, sim: ControlTarget) -> None:
        self.sim = sim

    def handle(self, method: str, path: str, query: str, body: str) -> tuple[int, Any]:
        action = self._actions().get((method, path.rstrip("/")))
        if action is None:
            return 404, {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}
        try:
            data = json.loads(body) if body.strip() else {}
            return 200, action(data if isinstance(data, dict) else {}, parse_qs(query))
        except SimError as e:
            return e.http_status, e.body()
        except (ValueError, TypeError, KeyError, InvalidOperation) as e:
            return 400, {"error": f"{type(e).__name__}: {e}"}

    def _actions(self) -> dict[tuple[str, str], Action]:
        sim, state, account, log = self.sim, self.sim.state, self.sim.account, self.sim.request_log
        return {
            ("GET", "/sim/state"): lambda d, q: account.snapshot(),
            ("GET", "/sim/requests"): lambda d, q: [
                r.to_dict() for r in log.entries()[int(q.get("since", ["0"])[0]) :]
            ],
            ("DELETE", "/sim/requests"): lambda d, q: log.clear(),
            ("GET", "/sim/faults"): lambda d, q: [f.to_dict() for f in sim.faults.active()],
            ("POST", "/sim/faults"): lambda d, q: sim.faults.add(Fault.from_dict(d)).to_dict(),
            ("DELETE", "/sim/faults"): lambda d, q: sim.faults.clear(),
            ("POST", "/sim/skew"): lambda d, q: sim.set_clock_skew_ms(int(d["skew_ms"])),
            ("POST", "/sim/visibility_delay"): lambda d, q: state.set_visibility_delay(
                int(d["delay_ms"]), conditional=bool(d.get("conditional", False))
            ),
            ("POST", "/sim/price"): lambda d, q: account.set_price(
                str(d["symbol"]), None if d.get("price") is None else Decimal(str(d["price"]))
            ),
            ("POST", "/sim/position"): lambda d, q: account.set_position(
                str(d["symbol"]), Decimal(str(d["amount"])), Decimal(str(d["entry_price"]))
            ),
            ("POST", "/sim/balance"): lambda d, q: account.set_balance(Decimal(str(d["balance"]))),
            ("POST", "/sim/hedge_mode"): lambda d, q: state.set_hedge_mode(bool(d["enabled"])),
            ("POST", "/sim/multi_assets"): lambda d, q: state.set_multi_assets(bool(d["enabled"])),
            ("POST", "/sim/clock/advance"): lambda d, q: sim.advance_clock(int(d["ms"])),
        }
