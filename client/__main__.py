"""``python -m burrowd.client``: the same as ``burrow``."""

from burrowd.client.launch import run

run()
