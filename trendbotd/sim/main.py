"""``trendbotd sim-exchange``: run the simulated exchange on its own until SIGINT/SIGTERM.

Prints the base URL and the API key; the secret goes only to ``--credentials-out``
(TOML, mode 0600), the same format the daemon's ``credentials_file`` reads.
``--state-file`` keeps the account across restarts (a faster clock resumes from the
stored time); an unreadable file exits 65, one that cannot be written 74.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType

from trendbotd.adapters.clock import ScaledClock, SystemClock
from trendbotd.core.clock import Clock
from trendbotd.exitcodes import ExitCode
from trendbotd.sim.errors import SimStateError
from trendbotd.sim.exchange import SimConfig, SimExchange
from trendbotd.sim.market import REGIMES, TIMEFRAMES_MS

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the candle generator")
    parser.add_argument("--regime", choices=REGIMES, default="mixed", help="generated market")
    parser.add_argument("--csv", type=Path, default=None, help="replay real candles from CSV")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="run the market this many times faster"
    )
    parser.add_argument("--delay-ms", type=int, default=0, help="delay every answer")
    parser.add_argument(
        "--symbols", default="BTC/USDT:USDT", help="comma-separated unified symbols"
    )
    parser.add_argument("--timeframe", choices=list(TIMEFRAMES_MS), default="1h")
    parser.add_argument("--balance", default="10000", help="starting USDT wallet balance")
    parser.add_argument(
        "--credentials-out", type=Path, default=None, help="write api_key/api_secret (TOML, 0600)"
    )
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=2400,
        help="request weight per window before 429 (Binance USD-M: 2400; 0: no limit)",
    )
    parser.add_argument(
        "--weight-window-s",
        type=float,
        default=60.0,
        help="length of the weight window in seconds (Binance: 60)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="keep the account (balance, positions, orders) in this file across restarts",
    )


def write_credentials(path: Path, api_key: str, api_secret: str) -> None:
    """Create or replace ``path`` with mode 0600 from the start (never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f'api_key = "{api_key}"\napi_secret = "{api_secret}"\n'.encode())
    finally:
        os.close(fd)


def _config(args: argparse.Namespace) -> SimConfig:
    if not 0 <= args.port <= 65535:
        raise ValueError("--port must be 0..65535")
    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    if args.delay_ms < 0:
        raise ValueError("--delay-ms must be >= 0")
    if args.weight_limit < 0:
        raise ValueError("--weight-limit must be >= 0")
    if not 1 <= args.weight_window_s <= 3600:
        raise ValueError("--weight-window-s must be 1..3600")
    try:
        balance = Decimal(args.balance)
    except InvalidOperation:
        raise ValueError("--balance must be a number") from None
    if args.csv is not None and not args.csv.is_file():
        raise ValueError(f"--csv {args.csv}: no such file")
    clock: Clock = SystemClock()
    start = SystemClock().now_ms()
    saved = None if args.state_file is None else SimExchange.saved_clock_ms(args.state_file)
    if args.speed != 1.0 or (saved is not None and saved > start):
        # a faster market resumes where the saved one stopped instead of going back in time
        clock = ScaledClock(start_ms=max(start, saved or 0), speed=args.speed)
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    return SimConfig(
        symbols=symbols,
        start_balance=balance,
        seed=args.seed,
        regime=args.regime,
        data_csv=args.csv,
        timeframe=args.timeframe,
        clock=clock,
        response_delay_ms=args.delay_ms,
        port=args.port,
        state_file=args.state_file,
        weight_limit_per_minute=args.weight_limit,
        weight_window_ms=int(args.weight_window_s * 1000),
    )


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        sim = SimExchange(_config(args))
    except SimStateError as e:
        print(f"trendbotd sim-exchange: {e}", file=sys.stderr)
        return int(e.exit_code)
    except (ValueError, OSError) as e:
        print(f"trendbotd sim-exchange: {e}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # only a flag: the main thread stops the server

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
    except SimStateError as e:
        print(f"trendbotd sim-exchange: {e}", file=sys.stderr)
        return int(e.exit_code)
    except OSError as e:
        print(f"trendbotd sim-exchange: cannot listen on port {args.port}: {e}", file=sys.stderr)
        return int(ExitCode.UNAVAILABLE)
    code = int(ExitCode.OK)
    try:
        if args.credentials_out is not None:
            write_credentials(args.credentials_out, sim.api_key, sim.api_secret)
        print(f"base_url {sim.base_url}", flush=True)
        print(f"api_key {sim.api_key}", flush=True)
        while not stop.wait(0.5):
            pass
    except OSError as e:
        print(f"trendbotd sim-exchange: {e}", file=sys.stderr)
        code = int(ExitCode.CANT_CREATE)
    finally:
        stopped = _stop(sim)  # the final save of the state file
    return code or stopped


def _stop(sim: SimExchange) -> int:
    try:
        sim.stop()
    except SimStateError as e:
        print(f"trendbotd sim-exchange: {e}", file=sys.stderr)
        return int(e.exit_code)
    return int(ExitCode.OK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trendbotd sim-exchange")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
