"""Helpers shared by the test suites (``from support.<module> import ...``; pytest puts
``tests/`` on the path, see ``pythonpath`` in pyproject.toml)."""
