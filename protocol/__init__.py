"""The wire contract shared by the ``burrow`` client, the daemon and editors.

Only the standard library and msgspec are imported here: the client's start-up depends on it.
"""

import sys as _sys

__version__ = "0.1.0.dev0"

if "msgspec" not in _sys.modules and "typing_extensions" not in _sys.modules:
    # msgspec imports typing_extensions when it is installed, only for ``get_type_hints``,
    # ``Required`` and ``NotRequired``, which ``typing`` has had since 3.11. Importing it
    # (and the ``inspect`` module it pulls in) is a third of msgspec's import time, on the
    # path of every ``burrow`` command; hide it while msgspec loads, then let others have it.
    _sys.modules["typing_extensions"] = None  # type: ignore[assignment]
    try:
        import msgspec  # noqa: F401
    finally:
        del _sys.modules["typing_extensions"]
