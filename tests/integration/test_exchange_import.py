"""Importing the adapter is cheap; building it loads one ccxt exchange, not all of them,
and a later ``import ccxt`` in the same process still sees the very same classes.

Each check runs in a fresh interpreter: this pytest process has ccxt imported already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_module_import_does_not_import_ccxt() -> None:
    out = run(
        """
        import sys
        import trendbotd.adapters.ccxt_exchange, trendbotd.trading.startup
        print(sorted(m for m in sys.modules if m == "ccxt" or m.startswith("ccxt.")))
        """
    )
    assert out.strip() == "[]"


def test_single_exchange_import_and_a_later_full_import_agree() -> None:
    out = run(
        """
        import sys
        from trendbotd.adapters.ccxt_exchange import load_exchange_class
        cls, errors = load_exchange_class("binanceusdm")
        exchanges = {m.split(".")[1] for m in sys.modules
                     if m.startswith("ccxt.") and m.count(".") == 1}
        print(sorted(exchanges - {"base", "abstract", "static_dependencies"}))
        print("ccxt" in sys.modules)
        import ccxt  # the real package now, reusing the loaded submodules
        print(ccxt.binanceusdm is cls, ccxt.NetworkError is errors.NetworkError,
              ccxt.InvalidOrder is errors.InvalidOrder, len(ccxt.exchanges) > 50)
        print(issubclass(ccxt.binanceusdm, ccxt.Exchange), callable(ccxt.bybit))
        """
    )
    lines = out.strip().splitlines()
    assert lines[0] == "['binance', 'binanceusdm']"
    assert lines[1] == "False"  # the stand-in parent package is gone again
    assert lines[2] == "True True True True"
    assert lines[3] == "True True"


def test_already_imported_ccxt_is_used_as_is() -> None:
    out = run(
        """
        import ccxt
        from trendbotd.adapters.ccxt_exchange import load_exchange_class
        cls, errors = load_exchange_class("binanceusdm")
        print(cls is ccxt.binanceusdm, errors.BaseError is ccxt.BaseError)
        """
    )
    assert out.strip() == "True True"
