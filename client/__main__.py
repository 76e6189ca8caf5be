"""``python -m burrowd.client``: the same as ``burrow``."""

from burrowd.client.cli import run

run()
