"""Alerts: a catalogue of named events, a persisted outbox and per-channel senders.

Delivery is a side path: ``AlertSink.emit`` writes a row to the outbox and returns; sender
threads deliver with their own timeouts, retries and rate limits. ``trendbotd alert``
(started by systemd's ``OnFailure=``) sends what the process itself could not.
"""
