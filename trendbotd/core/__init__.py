"""Pure decisions on plain data: no I/O, no clock reads; time comes in as ``now_ms``."""
