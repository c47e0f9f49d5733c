"""Order safety: write-ahead journal, deterministic client ids, guards, reconciliation and
the executor that never sends an order it cannot account for.

Only ``journal`` imports sqlite3; ``client_ids``, ``guards``, ``reconcile`` and the
``status`` formatter are pure; ``executor`` and ``positions`` do I/O through
``trendbotd.ports.Exchange`` and the journal.

How the engine uses it (see ``stack``):

1. ``open_instance_journal(config)`` right after taking the lock (JournalError: exit 65);
2. connect the exchange, take the startup ``AccountSnapshot``;
3. ``pm = build_position_manager(config, journal=..., exchange=..., clock=...)``;
4. ``pm.sync(snapshot)``: resolves every unfinished intent by client id, adopts what
   happened while down, replaces missing stops, cancels orphan stops, and sets the
   journal's mode to reduce-only on anything unexplained. Then READY=1;
5. each tick: ``pm.sync(snapshot)`` again (cheap when nothing is open), then guards
   (``guards.check_all``; journal each block with ``journal.record_guard_decision``),
   then ``pm.open_position(IntentSpec(..., protective_stop=...))`` or
   ``pm.close_position(symbol, purpose=Purpose.EXIT, ...)``; ``journal.set_last_tick``;
6. on SIGTERM: ``pm.shutdown(config.risk.shutdown_policy)``, then ``journal.close()``.
"""
