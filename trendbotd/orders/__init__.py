"""Order safety: write-ahead journal, deterministic client ids, guards, reconciliation and
the executor that never sends an order it cannot account for.

Only ``journal`` imports sqlite3; ``client_ids``, ``guards``, ``reconcile`` and ``status``
formatting are pure; ``executor`` does I/O through ``trendbotd.ports.Exchange``.
"""
