"""The order tests' fixtures (``clock``, ``fake``, ``bot``, ``executor``), defined with their
fakes in orders_fakes.py; a test module's own fixture of the same name takes precedence."""

from orders_fakes import bot, clock, executor, fake  # noqa: F401
