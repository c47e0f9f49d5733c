"""The leader lease against a real 3-member etcd cluster: gateway, election, fencing.

Each test uses its own leader key, so the module shares one cluster (seconds to start).
Nodes run in child processes (election_child.py) so they can be killed and stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.daemon_harness import REPO, clean_env, wait_until
from support.etcd_cluster import EtcdCluster, free_ports, running_cluster

from trendbotd.adapters.credentials import EtcdCredentials, Secret
from trendbotd.adapters.etcd_gateway import EtcdGateway
from trendbotd.errors import EtcdAuthError, EtcdRequestError, EtcdUnavailableError, LeaseLostError

TTL, RENEW, RPC = 4.0, 0.5, 0.8
MARGIN = 1.5  # election_child: recvWindow 1 s + clock bound 0.1 s + slack 0.4 s
CHILD = Path(__file__).with_name("election_child.py")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("etcd"))


@dataclass
class Line:
    kind: str
    wall: float
    fields: list[str]


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[str]
    lines: list[Line] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.split()
            if len(parts) >= 2:
                self.lines.append(Line(parts[0], float(parts[1]), parts[2:]))

    def states(self) -> list[Line]:
        return [x for x in list(self.lines) if x.kind == "STATE"]

    def role(self) -> str:
        states = self.states()
        return states[-1].fields[0] if states else ""

    def epoch(self) -> int:
        return int(self.states()[-1].fields[1])

    def sends(self) -> list[Line]:
        return [x for x in list(self.lines) if x.kind == "SEND"]

    def renewals(self) -> list[float]:
        return [float(x.fields[2]) for x in self.states() if x.fields[2] != "-"]

    def wait(self, predicate: Callable[[Node], bool], timeout: float, what: str) -> None:
        assert wait_until(lambda: predicate(self), timeout=timeout), (
            f"{self.name}: {what} not seen in {timeout} s; lines: {self.lines[-10:]}"
        )


@pytest.fixture
def spawn(etcd: EtcdCluster) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []
    key = f"/trendbotd/test-{uuid.uuid4().hex[:8]}/leader"

    def start(name: str, endpoints: list[str] | None = None) -> Node:
        args = [
            sys.executable,
            str(CHILD),
            ",".join(endpoints or etcd.endpoints),
            key,
            name,
            str(TTL),
            str(RENEW),
            str(RPC),
        ]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO, env=clean_env())
        node = Node(name, proc)
        threading.Thread(target=node.read, daemon=True).start()
        nodes.append(node)
        node.wait(lambda n: any(x.kind == "START" for x in n.lines), 20, "start")
        return node

    yield start
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)
            node.proc.kill()
        node.proc.wait(10)


def is_leader(n: Node) -> bool:
    return n.role() == "leader"


def test_gateway_against_real_etcd(etcd: EtcdCluster) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    gw = EtcdGateway([dead, *etcd.endpoints], timeout_s=2)  # fails over past the dead one
    key = f"/trendbotd/gw-{uuid.uuid4().hex[:8]}/leader"
    lease = gw.grant(5)
    first = gw.create_if_absent(key, b"node-a", lease.id)
    assert first.created and first.current is not None
    epoch = first.current.create_revision
    assert first.current.lease == lease.id
    other = gw.grant(5)
    second = gw.create_if_absent(key, b"node-b", other.id)
    assert not second.created
    assert second.current is not None and second.current.value == b"node-a"
    # the per-candle write of a leader: only while its epoch still owns the key
    assert gw.put_if_epoch(key + "/candle", b"1", leader_key=key, epoch=epoch, holder=b"node-a")
    assert not gw.put_if_epoch(
        key + "/candle", b"2", leader_key=key, epoch=epoch + 1, holder=b"node-a"
    )
    assert not gw.put_if_epoch(key + "/candle", b"3", leader_key=key, epoch=epoch, holder=b"node-b")
    candle = gw.get(key + "/candle")
    assert candle is not None and candle.value == b"1"
    assert gw.keepalive(lease.id) > 0
    gw.revoke(lease.id)
    assert gw.get(key) is None  # revoking the lease deleted the key
    with pytest.raises(LeaseLostError):
        gw.keepalive(lease.id)
    gw.revoke(lease.id)  # already gone: fine
    third = gw.create_if_absent(key, b"node-b", other.id)
    assert third.created and third.current is not None
    assert third.current.create_revision > epoch  # the epoch grows with each holder
    assert gw.delete(key) == 1
    gw.revoke(other.id)


def test_a_dead_cluster_answers_within_the_timeout() -> None:
    gw = EtcdGateway([f"http://127.0.0.1:{p}" for p in free_ports(3)], timeout_s=1)
    started = time.monotonic()
    with pytest.raises(EtcdUnavailableError, match="failed within 1 s"):
        gw.get("/x")
    assert time.monotonic() - started < 1.5


def assert_one_leader_at_a_time(nodes: list[Node]) -> None:
    """Each leadership (epoch) belongs to one node, and the sends of two leaderships never
    interleave. On a busy host a leader may lose its lease (a renewal timing out) and another
    node win it: that is allowed, two at once is not."""
    owner: dict[int, str] = {}
    for n in nodes:
        for x in n.states():
            if x.fields[0] == "leader":
                epoch = int(x.fields[1])
                assert owner.setdefault(epoch, n.name) == n.name, f"epoch {epoch} led twice"
    sends = sorted((x.wall, int(x.fields[0])) for n in nodes for x in n.sends())
    epochs = [epoch for _, epoch in sends]
    assert epochs == sorted(epochs), "the sends of two leaderships interleave"


def test_exactly_one_of_several_contenders_wins(spawn: Callable[..., Node]) -> None:
    nodes = [spawn(f"node-{i}") for i in range(3)]
    leaders: list[Node] = []

    def settled() -> bool:
        """One leader, and every other node sees it, with its epoch."""
        leaders[:] = [n for n in nodes if is_leader(n)]
        return len(leaders) == 1 and all(
            n is leaders[0]
            or (n.states() and n.states()[-1].fields[3] == leaders[0].name
                and n.epoch() == leaders[0].epoch())
            for n in nodes
        )  # fmt: skip

    assert wait_until(settled, timeout=15), [n.lines[-3:] for n in nodes]
    leader = leaders[0]
    # a graceful stop revokes the lease: another takes over at once, with a larger epoch
    first_epoch = leader.epoch()
    leader.proc.send_signal(signal.SIGINT)
    leader.proc.wait(30)  # a graceful stop on a busy host
    rest = [n for n in nodes if n is not leader]
    assert wait_until(lambda: sum(map(is_leader, rest)) == 1, timeout=5)
    (second,) = [n for n in rest if is_leader(n)]
    assert second.epoch() > first_epoch
    assert_one_leader_at_a_time(nodes)


def test_kill9_takeover_waits_out_the_ttl(spawn: Callable[..., Node]) -> None:
    a = spawn("host-a")
    a.wait(is_leader, 10, "leader")
    b = spawn("host-b")
    b.wait(lambda n: n.states() != [] and n.states()[-1].fields[3] == "host-a", 10, "sees a")
    a.wait(lambda n: len(n.renewals()) >= 3, 10, "renewals")
    a.proc.kill()
    a.proc.wait(5)
    last_renewal = a.renewals()[-1]
    b.wait(is_leader, TTL + 10, "takeover")
    took_over = next(x for x in b.states() if x.fields[0] == "leader").wall
    gap = took_over - last_renewal
    print(f"\nkill -9 takeover: {gap:.2f} s after the last renewal sent (ttl {TTL:g} s)")
    assert gap >= TTL, "a new holder appeared before the old lease could have expired"
    assert gap < TTL + 3
    assert b.epoch() > a.epoch()
    b.wait(lambda n: n.sends() != [], MARGIN + 2, "first order window")
    first_send = b.sends()[0].wall
    assert first_send >= took_over + MARGIN - 0.05  # a new leader waits out the margin
    print(f"kill -9 takeover: first order allowed {first_send - last_renewal:.2f} s after it")


def test_sigstop_past_the_ttl_never_leads_again(spawn: Callable[..., Node]) -> None:
    a = spawn("host-a")
    a.wait(is_leader, 10, "leader")
    b = spawn("host-b")
    a.wait(lambda n: len(n.renewals()) >= 2 and n.sends() != [], 10, "renewing and sending")
    a.proc.send_signal(signal.SIGSTOP)
    stopped = time.time()
    b.wait(is_leader, TTL + 10, "takeover")
    a.proc.send_signal(signal.SIGCONT)
    a.wait(lambda n: n.role() == "standby" and n.states()[-1].fields[3] == "host-b", 10, "back")
    after = [x for x in a.sends() if x.wall >= stopped]
    assert after == [], f"the stopped leader still sent after SIGCONT: {after}"
    roles_after = [x.fields[0] for x in a.states() if x.wall >= stopped]
    assert "leader" not in roles_after
    assert roles_after[0] == "demoted"
    # every order of the old leader was sent before the new leader's window began
    b.wait(lambda n: n.sends() != [], MARGIN + 2, "new leader sends")
    assert max(x.wall for x in a.sends()) < b.sends()[0].wall


def test_lost_quorum_demotes_before_the_ttl(etcd: EtcdCluster, spawn: Callable[..., Node]) -> None:
    a = spawn("host-a")
    a.wait(lambda n: is_leader(n) and len(n.renewals()) >= 3, 10, "leading")
    paused = etcd.members[1:]
    for m in paused:
        etcd.pause(m)
    try:
        cut = time.time()
        a.wait(lambda n: n.role() in ("demoted", "standby"), TTL + 5, "demotion")
        demoted = next(x for x in a.states() if x.fields[0] == "demoted").wall
        # The window runs from the last renewal the node saw succeed, which may be after the
        # cut: an etcd leader left without its quorum answers keepalives until it notices
        # (etcd 3.4; seen on a busy host: renewals went on ~1.5 s after the cut).
        last_renewal = max(r for r in a.renewals() if r < demoted)
        print(
            f"\nlost quorum: demoted {demoted - last_renewal:.2f} s after the last renewal "
            f"sent, {demoted - cut:.2f} s after the cut"
        )
        assert demoted - last_renewal < TTL
        late = [x for x in a.sends() if x.wall >= last_renewal + TTL - MARGIN]
        assert late == []
        # taken before the quorum is back: on a busy host it may lead again before
        # wait_healthy returns
        old_epoch = max(int(x.fields[1]) for x in a.states() if x.fields[0] == "leader")
    finally:
        for m in paused:
            etcd.resume(m)
    etcd.wait_healthy(30)
    a.wait(lambda n: is_leader(n) and n.epoch() > old_epoch, TTL + 15, "leads again")


def test_gateway_authenticates_with_user_and_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # its own one-member cluster: enabling auth must not touch the shared one
    single = EtcdCluster(tmp_path, size=1)
    try:
        single.start()
        ctl = ["etcdctl", "--endpoints", single.endpoints[0]]
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        for args in (
            ["user", "add", "root:r00t-Pw-7781", "--interactive=false"],
            ["auth", "enable"],
        ):
            subprocess.run([*ctl, *args], check=True, env=env, capture_output=True, timeout=20)
        password = "r00t-Pw-7781"
        good = EtcdCredentials("root", Secret(password), "test")
        gw = EtcdGateway(single.endpoints, timeout_s=3, credentials=good)
        lease = gw.grant(5)
        assert gw.create_if_absent("/auth/leader", b"a", lease.id).created
        assert gw.keepalive(lease.id) > 0
        with pytest.raises(EtcdRequestError):  # without a token etcd refuses
            EtcdGateway(single.endpoints, timeout_s=3).get("/auth/leader")
        bad = EtcdCredentials("root", Secret("wrong"), "test")
        with pytest.raises(EtcdAuthError, match="etcd refused user 'root'"):
            EtcdGateway(single.endpoints, timeout_s=3, credentials=bad).get("/auth/leader")
        assert password not in caplog.text
    finally:
        single.stop()
