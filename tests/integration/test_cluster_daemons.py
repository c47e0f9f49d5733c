"""Two real daemons, one account, a real 3-member etcd: one trades, the other stands by.

Same instance name and exchange keys, separate lock and journal directories (two hosts),
one standalone simulated exchange. Judged from sd_notify (READY, STATUS) and exit codes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_process import SimProcess, running_sim
from support.daemon_config import config_text, sim_exchange_keys
from support.daemon_harness import REPO, NotifyListener, clean_env
from support.etcd_cluster import EtcdCluster, running_cluster

TTL, RENEW, RPC = 5, 0.5, 0.8
MARGIN = 1.0 + 0.5 + 0.4  # recv_window_ms 1000 + max_clock_offset_ms 500 + slack_s 0.4


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("etcd"))


def clustered_config(
    directory: Path,
    sim: SimProcess,
    *,
    name: str,
    service: str,
    cluster: str,
    cluster_extra: str = "",
) -> str:
    """A live daemon on ``sim`` with a [cluster] section: ``cluster`` names the endpoints and
    the node, the lease timings are the module's."""
    timings = (
        f"ttl_s = {TTL}\nrenew_s = {RENEW}\nrpc_timeout_s = {RPC}\n"
        "recv_window_ms = 1000\nslack_s = 0.4\n"
    )
    return config_text(
        directory,
        name=name,
        exchange=sim_exchange_keys(sim.base_url, sim.creds),
        service=service,
        extra=f"\n[cluster]\n{cluster}\n{timings}{cluster_extra}",
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    yield from running_sim(tmp_path)


class Host:
    """One daemon with its own NOTIFY_SOCKET, lock and journal directories."""

    def __init__(self, tmp_path: Path, name: str, config: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"tbd-{name}-", dir="/tmp"))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.dir / "notify"))
        self.notify = NotifyListener(str(self.dir / "notify"), sock)
        threading.Thread(target=self.notify.serve, daemon=True).start()
        self.config = path = tmp_path / f"{name}.toml"
        path.write_text(config)
        self.stderr = (tmp_path / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trendbotd", "run", "--foreground", "--config", str(path)],
            stdout=subprocess.DEVNULL, stderr=self.stderr, text=True, cwd=REPO,
            env=clean_env(NOTIFY_SOCKET=self.notify.path),
        )  # fmt: skip

    def status(self, prefix: str, timeout: float) -> tuple[float, str]:
        _, msg = self.notify.wait_for(
            lambda m: m.fields.get("STATUS", "").startswith(prefix), timeout=timeout, proc=self.proc
        )
        return msg.at, msg.fields["STATUS"]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        self.notify.sock.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def hosts(tmp_path: Path, etcd: EtcdCluster, sim: SimProcess) -> Iterator[dict[str, Host]]:
    started: dict[str, Host] = {}
    key = f"/trendbotd/itest-{uuid.uuid4().hex[:8]}/leader"
    endpoints = ", ".join(f'"{e}"' for e in etcd.endpoints)

    def config(name: str) -> str:
        return clustered_config(
            tmp_path / name,
            sim,
            name="clustered",
            service="tick_interval_s = 1",
            cluster=f'endpoints = [{endpoints}]\nleader_key = "{key}"\nnode_name = "{name}"',
        )

    class Start:
        def __call__(self, name: str) -> Host:
            host = Host(tmp_path, name, config(name))
            started[name] = host
            return host

    yield Start()  # type: ignore[misc]
    for host in started.values():
        host.close()


def test_leader_trades_standby_waits_and_takes_over_after_kill9(hosts) -> None:  # type: ignore[no-untyped-def]
    a = hosts("host-a")
    a.notify.wait_key("READY", "1", timeout=30, proc=a.proc)
    _, status = a.status("leader (epoch ", 30)
    epoch_a = int(status.split("epoch ")[1].split(")")[0])
    a.status(f"leader (epoch {epoch_a}): ready", 60)
    b = hosts("host-b")
    _, ready = b.notify.wait_key("READY", "1", timeout=30, proc=b.proc)
    assert ready.fields["STATUS"].startswith("standby"), ready.fields
    b.status(f"standby: leader host-a (epoch {epoch_a})", 20)
    shown = subprocess.run(
        [sys.executable, "-m", "trendbotd", "status", "--config", str(b.config)],
        capture_output=True, text=True, timeout=30, cwd=REPO, env=clean_env(), check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"cluster: standby: leader host-a (epoch {epoch_a}), this node host-b" in shown.stdout
    killed = time.monotonic()
    a.proc.kill()
    a.proc.wait(5)
    at, status = b.status("leader (epoch ", TTL + 10)
    epoch_b = int(status.split("epoch ")[1].split(")")[0])
    assert epoch_b > epoch_a
    traded, _ = b.status(f"leader (epoch {epoch_b}): ready", 60)
    print(
        f"\ndaemon kill -9 failover: leader after {at - killed:.2f} s, trading (synced) after "
        f"{traded - killed:.2f} s (ttl {TTL} s, margin {MARGIN:g} s)"
    )
    assert traded - killed < TTL + MARGIN + 15
    # a clean stop resigns: the key is gone at once (no TTL to wait out)
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(20) == 0


def test_a_leader_cut_from_etcd_exits_before_the_ttl(hosts, etcd: EtcdCluster) -> None:  # type: ignore[no-untyped-def]
    a = hosts("host-a")
    a.status("leader (epoch ", 30)
    a.status("leader (epoch ", 60)
    a.notify.wait_for(lambda m: ": ready" in m.fields.get("STATUS", ""), timeout=60, proc=a.proc)
    paused = etcd.members[1:]
    for m in paused:
        etcd.pause(m)
    try:
        cut = time.monotonic()
        code = a.proc.wait(TTL + 5)
        exited = time.monotonic() - cut
    finally:
        for m in paused:
            etcd.resume(m)
    print(f"\nlost quorum: the leader exited {exited:.2f} s after the cut (ttl {TTL} s)")
    assert code == 69
    assert exited < TTL
    etcd.wait_healthy(30)


def test_a_leader_frozen_past_the_ttl_exits_on_sigcont(hosts) -> None:  # type: ignore[no-untyped-def]
    a = hosts("host-a")
    a.notify.wait_for(lambda m: ": ready" in m.fields.get("STATUS", ""), timeout=60, proc=a.proc)
    b = hosts("host-b")
    b.status("standby: leader host-a", 30)
    a.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    b.status("leader (epoch ", TTL + 10)
    seen = len(a.notify.messages())
    a.proc.send_signal(signal.SIGCONT)
    assert a.proc.wait(10) == 69
    after = [m.fields.get("STATUS", "") for m in a.notify.messages()[seen:]]
    assert not any(s.startswith("leader") for s in after), after
    print(f"\nSIGSTOP: host-b led {time.monotonic() - stopped:.2f} s after the stop; host-a exited")


def test_etcd_password_stays_out_of_logs_argv_and_environment(
    tmp_path: Path, sim: SimProcess
) -> None:
    single = EtcdCluster(tmp_path / "etcd-auth", size=1)
    (tmp_path / "etcd-auth").mkdir()
    password = "Etcd-Pw-" + uuid.uuid4().hex
    host: Host | None = None
    try:
        single.start()
        ctl = ["etcdctl", "--endpoints", single.endpoints[0]]
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        for args in (
            ["user", "add", f"root:{password}", "--interactive=false"],
            ["auth", "enable"],
        ):
            subprocess.run([*ctl, *args], check=True, env=env, capture_output=True, timeout=20)
        creds = tmp_path / "etcd.toml"
        creds.write_text(f'user = "root"\npassword = "{password}"\n')
        creds.chmod(0o600)
        config = clustered_config(
            tmp_path,
            sim,
            name="authed",
            service='log_level = "debug"',
            cluster=f'endpoints = ["{single.endpoints[0]}"]\nnode_name = "host-a"',
            cluster_extra=f'credentials_file = "{creds}"',
        )
        host = Host(tmp_path, "host-a", config)
        host.notify.wait_for(
            lambda m: ": ready" in m.fields.get("STATUS", ""), timeout=60, proc=host.proc
        )
        pid = host.proc.pid
        for name in ("cmdline", "environ"):
            assert password.encode() not in Path(f"/proc/{pid}/{name}").read_bytes()
        host.proc.send_signal(signal.SIGTERM)
        assert host.proc.wait(20) == 0
        host.stderr.flush()
        log = (tmp_path / "host-a.log").read_text()
        assert "cluster.leader node=host-a" in log  # the log is there, and says who leads
        assert password not in log
        for message in host.notify.messages():
            assert password.encode() not in message.raw
    finally:
        if host is not None:
            host.close()
        single.stop()
