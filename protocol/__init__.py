"""The wire contract shared by the ``burrow`` client, the daemon and editors.

Only the standard library and msgspec are imported here: the client's start-up depends on it.
"""

__version__ = "0.1.0.dev0"
