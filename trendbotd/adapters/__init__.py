"""Concrete adapters behind trendbotd.core.ports: the ccxt exchange and its credentials.

Nothing is imported here on purpose: importing the package must stay cheap (ccxt is heavy).
"""
