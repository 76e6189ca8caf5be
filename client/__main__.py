"""``python -m burrowd.client``: the same as ``burrow``."""

import sys

from burrowd.client.cli import main

sys.exit(main())
