"""The ``burrowd`` daemon: one per user, owner of the cache, server of the JSON-RPC methods."""
