"""The instance journal: one SQLite file (intents and fills, account state, operator
controls) and the modules that read it for ``status``, metrics and operator commands."""
