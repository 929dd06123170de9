"""Which processes serve: multiprocessing's helper processes (the resource tracker) are not instrumented.

Under ``uvicorn --workers`` the spawned resource tracker inherits ``opentelemetry-instrument``'s
start-up hook; instrumented, it would write its own metric snapshot and ``target_info``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def is_multiprocessing_helper(argv: Sequence[str] | None = None) -> bool:
    """True in multiprocessing's resource tracker or fork server (told by their ``-c`` command)."""
    command = " ".join(sys.orig_argv if argv is None else argv)
    return any(helper in command for helper in _HELPERS)
