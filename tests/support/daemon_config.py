"""Config files for a daemon under test: its lock, state and log live under one directory.

``paper_config`` runs against the in-process simulator; ``live_config`` against a
``SimExchange`` on 127.0.0.1 over real ccxt, with the credentials file written beside it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from trendbotd.sim import SimExchange
from trendbotd.sim.main import write_credentials


def config_text(
    directory: Path, *, name: str, exchange: str, tick_interval_s: float, extra: str = ""
) -> str:
    """[instance], [exchange] (``exchange`` holds its keys) and [service], then ``extra``."""
    head = textwrap.dedent(
        f"""\
        [instance]
        name = "{name}"
        runtime_dir = "{directory / "run"}"
        state_dir = "{directory / "state"}"

        [exchange]
        """
    )
    service = textwrap.dedent(
        f"""
        [service]
        tick_interval_s = {tick_interval_s}
        startup_timeout_s = 60
        """
    )
    return head + textwrap.dedent(exchange).strip() + "\n" + service + textwrap.dedent(extra)


def live_config(
    directory: Path,
    sim: SimExchange,
    *,
    name: str,
    symbol: str,
    exchange_extra: str = "",
    tick_interval_s: float = 0.3,
    extra: str = "",
) -> Path:
    """A live-mode config for ``sim`` trading ``symbol``, written to ``<name>.toml``."""
    creds = directory / "creds.toml"
    write_credentials(creds, sim.api_key, sim.api_secret)
    exchange = (
        f'paper = false\nbase_url = "{sim.base_url}"\ncredentials_file = "{creds}"\n'
        + textwrap.dedent(exchange_extra)
    )
    trading = f'\n[trading]\nsymbols = ["{symbol}"]\n'
    path = directory / f"{name}.toml"
    path.write_text(
        config_text(
            directory,
            name=name,
            exchange=exchange,
            tick_interval_s=tick_interval_s,
            extra=trading + textwrap.dedent(extra),
        )
    )
    return path
