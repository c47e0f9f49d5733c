"""What importing ccxt costs, and what the daemon's way of loading binanceusdm costs.

``import ccxt`` (and ``from ccxt.binanceusdm import binanceusdm``, which runs the package
``__init__`` first) imports all ~100 exchanges. Measured here, each in a fresh interpreter
(wall time of the whole process, and its peak RSS), after one discarded warm-up:
  - ``import ccxt`` and building a ``binanceusdm`` instance;
  - the daemon's way: ``trendbotd.adapters.ccxt_exchange.load_exchange_class`` (a bare
    stand-in ``ccxt`` package only while ``ccxt.binanceusdm`` is imported), then an instance;
  - binanceusdm alone: the package's ``__init__`` skipped by registering a bare package
    module, then ``ccxt.binanceusdm`` imported. Shown as the lower bound of what selective
    loading can save.
"""

from __future__ import annotations

import importlib.util
import subprocess
import time

from bench.common import PYTHON, Row, clean_env, log, median, mib, ms, timed_run

_REPORT = (
    "\nimport resource, sys\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "
    "sum(1 for m in sys.modules if m.startswith('ccxt.') and m.count('.') == 1))\n"
)

FULL = "import ccxt\nccxt.binanceusdm({})" + _REPORT

SELECTIVE = (
    "import importlib.util, sys, types\n"
    "spec = importlib.util.find_spec('ccxt')\n"
    "pkg = types.ModuleType('ccxt')\n"
    "pkg.__path__ = list(spec.submodule_search_locations)\n"
    "pkg.__spec__ = spec\n"
    "sys.modules['ccxt'] = pkg\n"
    "from ccxt.binanceusdm import binanceusdm\n"
    "binanceusdm({})" + _REPORT
)

ADAPTER_MODULE = "trendbotd.adapters.ccxt_exchange"
ADAPTER = (
    f"from {ADAPTER_MODULE} import load_exchange_class\n"
    "cls, errors = load_exchange_class('binanceusdm')\n"
    "cls({})" + _REPORT
)


def _run(code: str) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes, number of ccxt top-level modules loaded)."""
    started = time.perf_counter()
    result = subprocess.run([PYTHON, "-c", code], env=clean_env(), capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"import snippet failed: {result.stderr.decode(errors='replace')}")
    rss, modules = result.stdout.decode().split()[-2:]
    return elapsed, int(rss), int(modules)


def _measure(code: str, runs: int) -> tuple[float, float, int]:
    _run(code)  # warm-up
    samples = [_run(code) for _ in range(runs)]
    return (
        median([s[0] for s in samples]),
        median([float(s[1]) for s in samples]),
        samples[-1][2],
    )


def import_rows(runs: int) -> list[Row]:
    floor = median([timed_run([PYTHON, "-c", "pass"], expect=0) for _ in range(runs)])
    log(f"imports: import ccxt x {runs}")
    full_s, full_rss, full_mods = _measure(FULL, runs)
    rows = [
        Row(
            f"import ccxt + binanceusdm() (loads {full_mods} ccxt modules)",
            ms(full_s),
            "ms",
            baseline_name="python -c pass",
            baseline=ms(floor),
            runs=runs,
        ),
        Row("  its peak RSS", mib(full_rss), "MiB", runs=runs),
    ]
    variants = [("binanceusdm alone (ccxt __init__ skipped)", SELECTIVE)]
    if importlib.util.find_spec(ADAPTER_MODULE) is not None:
        variants.insert(0, ("the daemon's adapter import", ADAPTER))
    else:
        log(f"imports: {ADAPTER_MODULE} not installed yet, its row is left out")
    for label, code in variants:
        log(f"imports: {label} x {runs}")
        seconds, rss, mods = _measure(code, runs)
        rows += [
            Row(
                f"{label} (loads {mods} ccxt modules)",
                ms(seconds),
                "ms",
                baseline_name="import ccxt",
                baseline=ms(full_s),
                runs=runs,
            ),
            Row(
                "  its peak RSS",
                mib(rss),
                "MiB",
                baseline_name="import ccxt",
                baseline=mib(full_rss),
                runs=runs,
            ),
        ]
    return rows
