"""The ``burrowd`` daemon: one per user, owner of the cache, server of the JSON-RPC methods."""

# msgspec the lean way, before any module of the daemon imports it (its start, up to the
# early interpreter query, is about 7 ms shorter for it).
import burrowd.protocol.lean  # noqa: F401
