"""Child process of tests/integration/test_orders_crash.py.

Runs entry -> stop -> close rounds against a simulated exchange until the crash point named
in TRENDBOTD_CRASH_AT kills it with SIGKILL. Arguments: base_url api_key api_secret
journal_path first_round rounds.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# Run as a script, so its own directory (with orders_sim_support) is on sys.path.
from orders_sim_support import CANDLE, SYMBOL, adapter, long_entry, manager, snapshot

from trendbotd.core.records import Purpose
from trendbotd.journal.store import open_journal
from trendbotd.trading import crashpoints

HOUR_MS = 3_600_000


def main(argv: list[str]) -> int:
    base_url, key, secret, journal_path, first, rounds = argv[1:]
    logging.basicConfig(level=logging.INFO, format="child %(name)s %(message)s")
    exchange = adapter(base_url, key, secret)
    journal = open_journal(Path(journal_path))
    pm = manager(exchange, journal, crash=crashpoints.from_env())
    pm.sync(snapshot(exchange))
    for n in range(int(first), int(first) + int(rounds)):
        candle = CANDLE + n * HOUR_MS
        pm.open_position(long_entry(candle_time_ms=candle))
        pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=candle, reason="round")
    print("completed", flush=True)
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
