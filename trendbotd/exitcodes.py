"""Process exit codes. The unit file and operators depend on these numbers.

Values follow sysexits(3) where one fits, so systemd's RestartPreventExitStatus= can
tell "fix something first" (config, lock, credentials, journal) from "try again".
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # clean stop (SIGTERM/SIGINT handled)
    FAILURE = 1  # unexpected internal error; a stack trace is logged
    NOT_RUNNING = 3  # `status`: no process holds the instance lock (LSB "program is not running")
    USAGE = 64  # bad command line
    DATA_ERROR = 65  # journal corrupt or from a newer schema: needs a human, never recreated
    UNAVAILABLE = 69  # exchange unreachable or startup sync could not complete in time
    CANT_CREATE = 73  # lock or state path unusable (symlink, foreign owner, not writable)
    IO_ERROR = 74  # journal or state file I/O failed
    ALREADY_RUNNING = 75  # another process holds the instance lock (EX_TEMPFAIL)
    NO_PERMISSION = 77  # exchange rejected the credentials, or the credentials file is unsafe
    CONFIG_ERROR = 78  # configuration invalid (EX_CONFIG)
