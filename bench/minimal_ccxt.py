"""The baseline a daemon start is compared with: the least a ccxt bot must do.

    python bench/minimal_ccxt.py BASE_URL

Imports ccxt, loads the USD-M markets from the simulated exchange at BASE_URL, sends
READY=1 to $NOTIFY_SOCKET and then waits for SIGTERM (so its RSS can be read). No
trendbotd import, no time sync, no account, no journal, no logging.
"""

import os
import signal
import socket
import sys
from urllib.parse import urlsplit

import ccxt


def main() -> int:
    base_url = sys.argv[1]
    exchange = ccxt.binanceusdm({"enableRateLimit": False, "options": {"fetchCurrencies": False}})
    for name, url in list(exchange.urls["api"].items()):
        exchange.urls["api"][name] = base_url + urlsplit(url).path
    markets = exchange.load_markets()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"READY=1\nSTATUS={len(markets)} markets".encode(), os.environ["NOTIFY_SOCKET"])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
