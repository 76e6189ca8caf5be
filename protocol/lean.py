"""Import msgspec the lean way: import this module before anything else imports msgspec.

msgspec imports typing_extensions when it is installed, only for ``get_type_hints``,
``Required`` and ``NotRequired``, which ``typing`` has had since 3.11. Importing it (and the
``inspect`` module it pulls in) is a third of msgspec's import time, on the path of every
``burrow`` command and of the daemon's start; it is hidden while msgspec loads, then others
may have it. ``burrow`` (:mod:`burrowd.client.launch`) and the daemon's package import this
first; anything else that imports msgspec before it only loads msgspec the usual way.
"""

import sys as _sys

if "msgspec" not in _sys.modules and "typing_extensions" not in _sys.modules:
    _sys.modules["typing_extensions"] = None  # type: ignore[assignment]
    try:
        import msgspec  # noqa: F401
    finally:
        del _sys.modules["typing_extensions"]
