"""trendbotd: a trend-following trading daemon that is safe to run unattended."""

__version__ = "0.1.0"
