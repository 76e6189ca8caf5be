"""The ``burrow`` command-line client: standard library, msgspec and the protocol only."""
