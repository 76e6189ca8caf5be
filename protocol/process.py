"""Process helpers shared by the client (stop, restart), the daemon (lock holders, the
children it starts) and the benchmarks. Standard library only, like the rest of ``protocol``.
"""

from __future__ import annotations

import os
import sys

# Only the type checker reads these: the client imports this module at start, where
# ``typing`` would be loaded for nothing (see paths.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

__all__ = ["dies_with_parent", "process_alive"]

#: Run first in the child's interpreter: ask the kernel to kill it when this process dies
#: (a kill -9 of the daemon would leave a build or an unpack writing into the cache), then
#: become the child. No ``preexec_fn``: it is not safe in a process with threads.
_DIE_WITH_PARENT: Final = (
    "import os, sys\n"
    "try:\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "except Exception:\n"
    "    pass  # no ctypes in this interpreter: the child runs as it would have\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)  # the parent died already\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dies_with_parent(cmd: Sequence[str]) -> list[str]:
    """Return ``cmd`` (a Python interpreter first) started so that it ends with this
    process (Linux; as is elsewhere)."""
    if sys.platform != "linux":
        return list(cmd)
    # -I -S: the project's own modules (a ``signal.py``, a ``ctypes.py`` in the source tree,
    # the working directory) must not be imported here.
    return [cmd[0], "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


def process_alive(pid: int) -> bool:
    """Return whether ``pid`` still runs (an exited process nobody reaped yet does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state follows the parenthesised command name, which may hold spaces.
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")
