from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from trendbotd.trading import crashpoints
from trendbotd.trading.crashpoints import CrashPoints, NoCrashPoints, from_env


def test_without_the_variable_nothing_happens() -> None:
    hook = from_env({})
    assert isinstance(hook, NoCrashPoints)
    for step in crashpoints.STEPS:
        hook.hit(step)  # returns


def test_unknown_step_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(ValueError, match="unknown crash step 'after_journl'"):
        from_env({"TRENDBOTD_CRASH_AT": "after_journl"})
    with pytest.raises(ValueError, match="expected <step> or <step>@<n>"):
        from_env({"TRENDBOTD_CRASH_AT": "mid_close@x"})
    with pytest.raises(ValueError, match="at least 1"):
        CrashPoints("mid_close", nth=0)


def test_other_steps_and_earlier_hits_pass() -> None:
    hook = from_env({"TRENDBOTD_CRASH_AT": "mid_close@3"})
    assert isinstance(hook, CrashPoints)
    hook.hit("before_journal")
    hook.hit("mid_close")
    hook.hit("mid_close")  # the third would kill


def test_the_process_is_sigkilled_at_the_named_step() -> None:
    code = (
        "from trendbotd.trading.crashpoints import from_env\n"
        "hook = from_env()\n"
        "hook.hit('before_journal')\n"
        "print('passed first', flush=True)\n"
        "hook.hit('after_reply_before_journal')\n"
        "hook.hit('after_reply_before_journal')\n"
        "print('survived', flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"TRENDBOTD_CRASH_AT": "after_reply_before_journal@2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert "passed first" in proc.stdout
    assert "survived" not in proc.stdout
    assert "crashpoint.kill step=after_reply_before_journal" in proc.stderr
