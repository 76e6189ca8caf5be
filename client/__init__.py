"""The ``burrow`` command-line client: standard library, msgspec and the protocol only.

The package imports nothing itself: ``burrow`` starts in :mod:`burrowd.client.launch`, which
may start the daemon before the client loads.
"""
