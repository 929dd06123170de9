"""The program holding a port, named from /proc; unknown is None, never an exception."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from otel_gatewayz._metrics.port_owner import port_owner


def test_the_process_listening_on_a_port_is_named_with_its_command_line():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        owner = port_owner(port)
    assert owner is not None and owner.startswith(f"pid {os.getpid()} (") and "python" in owner


def test_a_port_nobody_listens_on_and_a_system_without_proc_are_unknown(tmp_path: Path):
    with socket.socket() as bound:  # bound, not listening
        bound.bind(("127.0.0.1", 0))
        assert port_owner(bound.getsockname()[1]) is None
    assert port_owner(9, proc=tmp_path) is None
