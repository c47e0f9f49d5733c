"""A node of the election in its own process, for kill -9 / SIGSTOP tests.

argv: endpoints(comma-separated) key node ttl_s renew_s rpc_timeout_s
Prints one line per state change and, every 50 ms while it may send, a SEND line:
  STATE <wall> <role> <epoch> <renew_sent_wall or -> <leader_node or ->
  SEND <wall> <epoch>
Wall times are time.time(), comparable between processes on the host.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from trendbotd.adapters.etcd_gateway import EtcdGateway
from trendbotd.cluster.election import Election
from trendbotd.cluster.fencing import Timing
from trendbotd.cluster.states import ElectionState, Role


def wall(mono: float) -> float:
    return time.time() - (time.monotonic() - mono)


def main() -> None:
    endpoints, key, node = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    ttl, renew, rpc = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    # margin 1.5 s: recvWindow 1 s + clock bound 0.1 s + slack 0.4 s
    timing = Timing(ttl, renew, rpc, recv_window_ms=1000, clock_bound_ms=100, slack_s=0.4)
    out = threading.Lock()

    def say(line: str) -> None:
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def changed(_old: ElectionState, new: ElectionState) -> None:
        sent = f"{wall(new.renew_sent_at):.3f}" if new.renew_sent_at is not None else "-"
        say(f"STATE {time.time():.3f} {new.role.value} {new.epoch} {sent} {new.leader_node or '-'}")

    # SIGINT/SIGTERM only set a flag, as the daemon's handlers do. A KeyboardInterrupt can
    # land anywhere in the main thread (inside a write to stdout, say); once, on a busy host,
    # a node so stopped had not exited 30 s later.
    requested: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: requested.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, _frame: requested.append(signum))
    gateway = EtcdGateway(endpoints, timeout_s=rpc)
    election = Election(gateway, key=key, node=node, timing=timing, poll_s=0.2, listener=changed)
    stop = threading.Event()
    loop = threading.Thread(target=election.run, args=(stop,), daemon=True)
    loop.start()
    say(f"START {time.time():.3f} {node}")
    while loop.is_alive() and not requested:
        if election.may_send():
            state = election.state
            assert state.role is Role.LEADER
            say(f"SEND {time.time():.3f} {state.epoch}")
        time.sleep(0.05)
    stop.set()  # the election resigns: it revokes the lease, so a standby takes over at once
    loop.join(10)


if __name__ == "__main__":
    main()
