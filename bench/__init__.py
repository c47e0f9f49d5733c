"""Benchmarks of the daemon, each figure beside a baseline measured in the same run.

``make bench`` (``.venv/bin/python -m bench``) runs them all and prints one table.
Not part of ``make test``: the figures are printed, never asserted.
"""
