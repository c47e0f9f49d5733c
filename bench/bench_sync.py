"""How long startup sync (``trendbotd.trading.startup.sync_account``) takes against the sim.

    .venv/bin/python -m bench.bench_sync [--runs N]

The simulated exchange runs as its own process on 127.0.0.1. Each run builds a fresh
adapter (new HTTP connection) and syncs 1 and 10 symbols, with ccxt's rate limiter off and
on (on is the live default: ~50 ms between requests). Baseline: the same requests made
with bare ccxt and no checks (fetch_time, load_markets, fetch_balance, fetch_positions,
fetch_open_orders plain + trigger per symbol).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import Row, log, median, ms, render_table, running_sim, scratch_dir

SYMBOLS_10 = tuple(
    f"{base}/USDT:USDT"
    for base in ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "AVAX", "LINK", "DOT")
)


class _Quiet:
    def step(self, text: str) -> None:
        return None

    def waiting(self, seconds: float) -> None:
        return None


def _credentials(path: Path) -> tuple[str, str]:
    from trendbotd.adapters.credentials import load_credentials

    creds = load_credentials(credentials_file=path, credential_name="")
    return creds.api_key.reveal(), creds.api_secret.reveal()


def _sync_once(base_url: str, creds: tuple[str, str], symbols: Sequence[str], *,
               rate_limit: bool) -> float:  # fmt: skip
    from trendbotd.adapters.ccxt_exchange import CcxtExchange
    from trendbotd.adapters.clock import SystemClock
    from trendbotd.trading.startup import sync_account

    clock = SystemClock()
    exchange = CcxtExchange(
        exchange_id="binanceusdm",
        api_key=creds[0],
        api_secret=creds[1],
        base_url=base_url,
        demo=False,
        recv_window_ms=5000,
        timeout_s=10,
        clock=clock,
        rate_limit=rate_limit,
    )
    started = time.perf_counter()
    sync_account(
        exchange=exchange,
        symbols=symbols,
        progress=_Quiet(),
        clock=clock,
        deadline_ms=clock.now_ms() + 60_000,
        max_clock_offset_ms=500,
    )
    elapsed = time.perf_counter() - started
    exchange.close()
    return elapsed


def _bare_once(base_url: str, creds: tuple[str, str], symbols: Sequence[str], *,
               rate_limit: bool) -> float:  # fmt: skip
    from urllib.parse import urlsplit

    import ccxt

    client: Any = ccxt.binanceusdm(
        {
            "apiKey": creds[0],
            "secret": creds[1],
            "enableRateLimit": rate_limit,
            "options": {"fetchCurrencies": False},
        }
    )
    for name, url in list(client.urls["api"].items()):
        client.urls["api"][name] = base_url + urlsplit(url).path
    started = time.perf_counter()
    client.load_time_difference()
    client.load_markets(True)
    client.fetch_balance()
    client.fetch_positions(list(symbols))
    for symbol in symbols:
        client.fetch_open_orders(symbol)
        client.fetch_open_orders(symbol, None, None, {"trigger": True})
    elapsed = time.perf_counter() - started
    client.session.close()
    return elapsed


def sync_rows(runs: int) -> list[Row]:
    """One fresh sim per configuration: back-to-back syncs with the rate limiter off would
    otherwise exceed the sim's (Binance's) 2400 weight/min and get 429s."""
    rows: list[Row] = []
    for symbols in (SYMBOLS_10[:1], SYMBOLS_10):
        for rate_limit in (False, True):
            label = f"{len(symbols)} symbol(s), rate limiter {'on' if rate_limit else 'off'}"
            log(f"sync: {label} x {runs}")
            with scratch_dir("tbd-bench-sync-") as directory, running_sim(
                directory, symbols=SYMBOLS_10
            ) as sim:  # fmt: skip
                args = (sim.base_url, _credentials(sim.credentials), symbols)
                _sync_once(*args, rate_limit=rate_limit)  # warm-up
                ours = [_sync_once(*args, rate_limit=rate_limit) for _ in range(runs)]
                bare = [_bare_once(*args, rate_limit=rate_limit) for _ in range(runs)]
            rows.append(
                Row(
                    f"sync_account, {label}",
                    ms(median(ours)),
                    "ms",
                    baseline_name="same requests, bare ccxt",
                    baseline=ms(median(bare)),
                    runs=runs,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sync")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    print(render_table(sync_rows(max(1, args.runs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
