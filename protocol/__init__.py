"""The wire contract shared by the ``burrow`` client, the daemon and editors.

Only the standard library and msgspec are imported by its modules: the client's start-up
depends on it. The package itself imports nothing, so that ``burrow`` can find the daemon's
socket (:mod:`burrowd.protocol.paths`) before it loads msgspec (see
:mod:`burrowd.client.launch`); :mod:`burrowd.protocol.lean` loads msgspec the fast way.
"""

__version__ = "0.1.0.dev0"
