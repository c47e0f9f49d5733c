"""The alert side path: what it costs the daemon.

    .venv/bin/python -m bench.bench_alerts [--runs N] [--emits N]

Figures:
  - ``emit`` latency (median and max over ``emits`` calls) while the channel hangs: every
    request to it sleeps past the run. The baseline is the same calls with a healthy channel.
    Trading calls ``emit``, so this is the most an alert can add to a decision.
  - RSS one second after READY=1 of the real daemon with one webhook channel, beside the
    same daemon without [alerts] (median over ``runs`` launches; the simulated exchange
    runs in its own process).
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.bench_daemon import SYMBOLS_1, Instance, launch_once
from bench.common import Row, Target, log, median, mib, ms, render_table, running_sim, scratch_dir


class _Hook(http.server.BaseHTTPRequestHandler):
    hang = threading.Event()  # set: requests hang until the server stops

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.hang.is_set():
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _webhook(*, hang: bool) -> Iterator[int]:
    _Hook.hang.clear()
    if hang:
        _Hook.hang.set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _alerts_toml(directory: Path, port: int, *, rate_limit: int = 20) -> str:
    secret = directory / "hook.secret"
    secret.write_text(f'url = "http://127.0.0.1:{port}/hook"\n')
    secret.chmod(0o600)
    return (
        f"[alerts]\nsend_timeout_s = 30\nrate_limit = {rate_limit}\n[alerts.channels.hook]\n"
        f'kind = "webhook"\nmin_severity = "info"\nsecret_file = "{secret}"\n'
    )


def emit_latencies(directory: Path, *, hang: bool, emits: int) -> list[float]:
    """Seconds per ``emit`` with the real outbox and sender, channel healthy or hanging."""
    from trendbotd.alerts.wiring import open_alerts
    from trendbotd.config import Config, load_config

    tag = "hang" if hang else "ok"
    with _webhook(hang=hang) as port:
        path = directory / f"emit-{tag}.toml"
        path.write_text(
            f'[instance]\nname = "emit{tag}"\nstate_dir = "{directory / "state"}"\n'
            + _alerts_toml(directory, port, rate_limit=1000)  # healthy: the sender keeps up
        )
        config: Config = load_config(path)
        alerts = open_alerts(config)
        alerts.start_senders()
        try:
            alerts.sink.emit("daemon.started")
            time.sleep(0.2)  # the sender is inside its (hanging) request
            out = []
            for i in range(emits):
                start = time.perf_counter()
                alerts.sink.emit("exchange.unreachable", key=f"k{i}", attempt=i)
                out.append(time.perf_counter() - start)
                time.sleep(0.002)  # a storm, not one burst: the sender runs in between
            return out
        finally:
            alerts.flush_s = 0.5
            alerts.close()


def rss_row(directory: Path, runs: int) -> Row:
    with running_sim(directory, symbols=SYMBOLS_1) as sim, _webhook(hang=False) as port:
        plain = Instance(directory, "plain", SYMBOLS_1, sim)
        alerting = Instance(
            directory, "alerting", SYMBOLS_1, sim, extra_toml=_alerts_toml(directory, port)
        )
        plain.write()
        alerting.write()
        off: list[float] = []
        on: list[float] = []
        for i in range(runs + 1):  # the first of each is a warm-up
            a = launch_once(plain, f"p{i}").rss
            b = launch_once(alerting, f"a{i}").rss
            if i:
                off.append(mib(a))
                on.append(mib(b))
            log(f"rss run {i}: off {mib(a):.1f} MiB, on {mib(b):.1f} MiB")
    base = median(off)
    return Row(
        "RSS after READY, one webhook channel",
        median(on),
        "MiB",
        "without [alerts]",
        base,
        Target("max", base + 5.0, "<= +5 MiB"),
        runs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_alerts")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--emits", type=int, default=500)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with scratch_dir("tbd-bench-alerts-") as directory:
        healthy = emit_latencies(directory, hang=False, emits=args.emits)
        hanging = emit_latencies(directory, hang=True, emits=args.emits)
        log(f"emit: healthy median {ms(statistics.median(healthy)):.3f} ms")
        rows.append(
            Row(
                "alert emit while the channel hangs, median",
                ms(statistics.median(hanging)),
                "ms",
                "healthy channel",
                ms(statistics.median(healthy)),
                Target("max", 5.0, "< 5 ms"),
                args.emits,
            )
        )
        rows.append(
            Row(
                "alert emit while the channel hangs, max",
                ms(max(hanging)),
                "ms",
                "healthy channel",
                ms(max(healthy)),
                Target("max", 100.0, "< 100 ms"),
                args.emits,
            )
        )
        rows.append(rss_row(directory, args.runs))
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
