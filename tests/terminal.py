"""Run a command with its stderr on a pseudo-terminal, as an operator at a shell would see it."""

from __future__ import annotations

import os
import pty
import subprocess


def run_on_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, bytes]:
    """Return the exit code and everything written to the terminal (stderr; stdout discarded)."""
    parent, child = pty.openpty()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=child, stdin=subprocess.DEVNULL)
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the other side closed: the child exited
            break
        if not chunk:
            break
        output += chunk
    code = proc.wait(timeout)
    os.close(parent)
    return code, output
