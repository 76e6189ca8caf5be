"""The ``burrow`` command-line client: standard library, msgspec and the protocol only."""

# The protocol package loads msgspec the lean way; it must come before any msgspec import.
import burrowd.protocol  # noqa: F401
