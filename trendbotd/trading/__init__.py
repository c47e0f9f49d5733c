"""The trading side: one tick, the startup sync, the order executor, the position manager,
and the composition root that alone picks the concrete adapters."""
