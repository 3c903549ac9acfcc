"""What the supporters' CLI groups share: error exits, progress bars and the output stream."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from core.errors import DomainError, ValidationFailed
from supporters.models import SupporterKind, SupporterStatus

STATUSES = [s.value for s in SupporterStatus]
KINDS = [k.value for k in SupporterKind]


def fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def error_message(exc: DomainError) -> str:
    if isinstance(exc, ValidationFailed) and exc.errors:
        return "; ".join(f"{f}: {m}" if f not in ("file",) else m for f, msgs in exc.errors.items() for m in msgs)
    return exc.detail


def show_progress(quiet: bool) -> bool:
    """A progress bar only for a person watching a terminal: silent when piped or --quiet."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool, length: int | None, label: str):
    if not enabled:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar.update


@contextmanager
def output_stream(path: str | None):
    """The binary stream to write to; a file appears complete (renamed into place) or not at all."""
    if path is None or path == "-":
        try:
            yield sys.stdout.buffer
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): not an error of ours. Point stdout at /dev/null
            # so the interpreter's final flush does not complain, and stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        return
    target = Path(path)
    if target.is_dir():
        fail(f"--output {path}: is a directory")
    tmp = target.with_name(f".{target.name}.partial")
    try:
        fh = open(tmp, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        fail(f"--output {path}: cannot write: {exc.strerror or exc}")
    try:
        yield fh
        fh.close()
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
