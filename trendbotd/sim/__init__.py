"""The project's own simulated Binance USD-M REST exchange (stdlib only, no ccxt).

Paper mode, integration tests, fault matrices and benchmarks talk to it through real ccxt
over HTTP on 127.0.0.1, exactly as they would talk to Binance.
"""

from trendbotd.sim.errors import SimStateError
from trendbotd.sim.exchange import SimConfig, SimExchange
from trendbotd.sim.faults import Fault
from trendbotd.sim.requestlog import RecordedRequest

__all__ = ["Fault", "RecordedRequest", "SimConfig", "SimExchange", "SimStateError"]
