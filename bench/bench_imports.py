"""What importing ccxt costs, and what the daemon's way of loading binanceusdm costs.

``import ccxt`` (and ``from ccxt.binanceusdm import binanceusdm``, which runs the package
``__init__`` first) imports all ~100 exchanges. Measured here, each in a fresh interpreter
(wall time of the whole process, and its peak RSS, VmHWM), after one discarded warm-up:
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

# Peak RSS from VmHWM: exec starts a fresh address space and resets it, whereas
# ru_maxrss carries the high-water mark of the forking parent over into the child.
_REPORT = (
    "\nimport sys\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "print(int(hwm.split()[1]) * 1024, "
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


def import_rows(runs: int) -> list[Row]:
    """Interleaved: each round runs the floor and every variant once."""
    variants = [("full", FULL), ("selective", SELECTIVE)]
    if importlib.util.find_spec(ADAPTER_MODULE) is not None:
        variants.insert(1, ("adapter", ADAPTER))
    else:
        log(f"imports: {ADAPTER_MODULE} not installed, its row is left out")
    log(f"imports: python -c pass, {', '.join(v for v, _ in variants)}: {runs} + 1 warm-up")
    floor: list[float] = []
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name, _ in variants}
    for i in range(runs + 1):
        f = timed_run([PYTHON, "-c", "pass"], expect=0)
        got = {name: _run(code) for name, code in variants}
        if i:
            floor.append(f)
            for name, sample in got.items():
                samples[name].append(sample)

    def summary(name: str) -> tuple[float, float, int]:
        kept = samples[name]
        return median([s[0] for s in kept]), median([float(s[1]) for s in kept]), kept[-1][2]

    full_s, full_rss, full_mods = summary("full")
    rows = [
        Row(
            f"import ccxt + binanceusdm() (loads {full_mods} ccxt modules)",
            ms(full_s),
            "ms",
            baseline_name="python -c pass",
            baseline=ms(median(floor)),
            runs=runs,
        ),
        Row("  its peak RSS", mib(full_rss), "MiB", runs=runs),
    ]
    labels = {
        "adapter": "the adapter's load_exchange_class + instance",
        "selective": "ccxt.binanceusdm alone, no trendbotd",
    }
    for name, _ in variants[1:]:
        seconds, rss, mods = summary(name)
        rows += [
            Row(
                f"{labels[name]} (loads {mods} ccxt modules)",
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
