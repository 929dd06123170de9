"""Which program holds a TCP port, when the system tells (Linux ``/proc``); for the one warning that says so.

A ``/metrics`` port taken by another program is a deployment mistake the operator must see by
name; this is best effort and never raises: unknown is ``None``.
"""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _holds(pid_dir: Path, sockets: set[str]) -> bool:
    try:
        fds = list((pid_dir / "fd").iterdir())
    except OSError:
        return False  # gone, or not ours to read
    for fd in fds:
        try:
            if os.readlink(fd) in sockets:
                return True
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return False


def port_owner(port: int, proc: Path = Path("/proc")) -> str | None:
    """``pid N (command line)`` of the process listening on ``port``, or None when it cannot be told."""
    try:
        inodes = _listening_inodes(port, proc)
        if not inodes:
            return None
        sockets = {f"socket:[{inode}]" for inode in inodes}
        for pid_dir in proc.iterdir():
            if not pid_dir.name.isdigit():
                continue
            if _holds(pid_dir, sockets):
                command = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                return f"pid {pid_dir.name} ({command[:120]})"
    except (OSError, ValueError):
        return None
    return None
