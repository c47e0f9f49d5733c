"""Active/standby across hosts: a leader key under an etcd lease (issue 14).

Pure decision parts (``fencing``, ``states``) are kept apart from the I/O loop
(``election``) so the safety rule is table-tested without a clock or a network.
"""
