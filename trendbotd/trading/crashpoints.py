"""Named kill points for crash tests: the process SIGKILLs itself at a chosen step.

Set ``TRENDBOTD_CRASH_AT=<step>`` (or ``<step>@<n>`` to die the n-th time the step is
reached) in the daemon's environment. The variable is read once, when the executor is
built; without it every ``hit()`` is a no-op. Steps, in the order an order passes them:

- ``before_journal``             decided, nothing journalled yet
- ``after_journal_before_send``  intent committed as SENT, request not yet sent
- ``after_reply_before_journal`` the exchange answered; the answer is not journalled
- ``between_stop_and_entry``     the entry's stop is placed, the entry not yet journalled
- ``between_fill_and_stop``      entry fill journalled, its stop's coverage not yet checked
- ``mid_close``                  a close order went out; flatness not yet confirmed

"after send, before reply" is not a kill point: the simulated exchange's ``drop_after``
fault produces exactly that from the outside. An unknown step name is an error, so a
typo cannot make a crash test pass without crashing.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from typing import Protocol

logger = logging.getLogger(__name__)

ENV_VAR = "TRENDBOTD_CRASH_AT"
STEPS = (
    "before_journal",
    "after_journal_before_send",
    "after_reply_before_journal",
    "between_stop_and_entry",
    "between_fill_and_stop",
    "mid_close",
)
EXIT_STATUS = 137  # what a shell reports for a SIGKILLed process


class CrashHook(Protocol):
    def hit(self, step: str) -> None:
        """Called as the executor passes ``step``; may not return."""
        ...


class NoCrashPoints:
    """The production hook: does nothing."""

    def hit(self, step: str) -> None:
        return None


class CrashPoints:
    """Kills the process with SIGKILL the ``nth`` time ``step`` is reached."""

    def __init__(self, step: str, *, nth: int) -> None:
        if step not in STEPS:
            raise ValueError(f"{ENV_VAR}: unknown crash step {step!r} (known: {', '.join(STEPS)})")
        if nth < 1:
            raise ValueError(f"{ENV_VAR}: the count after @ must be at least 1, not {nth}")
        self.step = step
        self.nth = nth
        self._seen = 0

    def hit(self, step: str) -> None:
        if step != self.step:
            return
        self._seen += 1
        if self._seen < self.nth:
            return
        # Straight to fd 2: logging handlers may buffer and would die with us.
        os.write(2, f"crashpoint.kill step={step} pid={os.getpid()}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(EXIT_STATUS)  # pragma: no cover - SIGKILL does not return


def from_env(env: Mapping[str, str] | None = None) -> CrashHook:
    """Build the hook once from ``TRENDBOTD_CRASH_AT``; absent or empty -> no-op."""
    raw = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    if not raw:
        return NoCrashPoints()
    step, _, count = raw.partition("@")
    try:
        nth = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{ENV_VAR}={raw!r}: expected <step> or <step>@<n>") from None
    logger.warning("crashpoint.armed step=%s nth=%s", step, nth)
    return CrashPoints(step, nth=nth)
