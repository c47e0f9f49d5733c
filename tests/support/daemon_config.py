"""Config files for a daemon under test: its lock, state and log live under one directory.

``paper_config`` runs against the in-process simulator; ``live_config`` against a
``SimExchange`` on 127.0.0.1 over real ccxt, with the credentials file written beside it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from trendbotd.sim import SimExchange
from trendbotd.sim.main import write_credentials


def config_text(directory: Path, *, name: str, exchange: str, service: str, extra: str = "") -> str:
    """[instance], [exchange] and [service] (``exchange`` and ``service`` hold the keys
    besides the directories and the startup timeout), then ``extra``."""
    head = textwrap.dedent(
        f"""\
        [instance]
        name = "{name}"
        runtime_dir = "{directory / "run"}"
        state_dir = "{directory / "state"}"

        [exchange]
        """
    )
    keys = textwrap.dedent(service).strip()
    return (
        head
        + textwrap.dedent(exchange).strip()
        + f"\n\n[service]\n{keys}\nstartup_timeout_s = 60\n"
        + textwrap.dedent(extra)
    )


def sim_exchange_keys(base_url: str, credentials_file: Path) -> str:
    """The [exchange] keys of a live daemon trading on a simulated exchange."""
    return f'paper = false\nbase_url = "{base_url}"\ncredentials_file = "{credentials_file}"\n'


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
    exchange = sim_exchange_keys(sim.base_url, creds) + textwrap.dedent(exchange_extra)
    trading = f'\n[trading]\nsymbols = ["{symbol}"]\n'
    path = directory / f"{name}.toml"
    path.write_text(
        config_text(
            directory,
            name=name,
            exchange=exchange,
            service=f"tick_interval_s = {tick_interval_s}",
            extra=trading + textwrap.dedent(extra),
        )
    )
    return path
