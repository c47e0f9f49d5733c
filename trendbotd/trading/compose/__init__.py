"""The composition root: the one place that picks and builds concrete adapters (the ccxt
exchange or the simulator, the clocks, the weight governor, the etcd gateway, the metrics
server) and hands them to the runners, which only drive.

Kept free of imports here: ``trendbotd status`` reads ``compose.journal`` on its light
path, and the lifecycle loads ``compose.metrics`` only when ``[metrics]`` is set.
"""
