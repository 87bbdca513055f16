"""Options and behaviour every ``sfrt`` subcommand shares.

- :func:`common_options`: a parent parser with ``-q/--quiet``, ``-v/--verbose`` and ``--log FILE``;
  pass it as ``parents=[common_options()]`` to ``sub.add_parser`` so each subcommand accepts them
  after its name (``sfrt compare -v``) as well as before it (``sfrt -v compare``).
- :func:`add_backend_option`, :func:`add_memory_option`, :func:`add_out_option`: the options of
  the subcommands that compute dose and write results, with their up-front checks
  :func:`check_backend` and :func:`memory_budget`.
- :func:`configure_logging`: ``-v`` logs each stage with its time to stderr, ``--log FILE`` writes
  the same lines to a file; warnings become one ``sfrt: warning: ...`` line each.
- :class:`Stages`: a progress callback that logs each stage and the time the previous one took.
- :class:`UsageError`: a bad combination of options (exit 2, one line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

from ..errors import SfrtError

__all__ = ["UsageError", "common_options", "add_backend_option", "add_memory_option", "add_out_option",
           "check_backend", "memory_budget", "configure_logging", "reset_logging", "Stages"]

log = logging.getLogger("sfrt")
_HANDLERS: list[logging.Handler] = []
_SHOWWARNING = warnings.showwarning


class UsageError(SfrtError, ValueError):
    """Options that cannot be used together, or a value outside what an option accepts."""


def common_options(top_level: bool = False) -> argparse.ArgumentParser:
    """Parent parser with -q, -v and --log (defaults only at the top level, so a subcommand's flag wins)."""
    p = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if top_level else (lambda value: argparse.SUPPRESS)
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="no progress bar; only warnings and errors on stderr")
    group.add_argument("-v", "--verbose", action="store_true", default=default(False),
                       help="log each stage with its time, and the engine's choices")
    p.add_argument("--log", metavar="FILE", default=default(None),
                   help="also write the log (stages, times, choices, warnings) to FILE")
    return p


def add_backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")


def add_memory_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", metavar="SIZE", default=None,
                   help="refuse runs estimated to need more memory than SIZE, e.g. 2GB or 512MB "
                        "(default: $SFRT_MAX_MEMORY, else 80%% of the available memory)")


def add_out_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="sfrt_out",
                   help="output folder, written as one set with a manifest.json (default ./sfrt_out)")


def check_backend(name: str) -> str:
    """Check a ``--backend`` value before any work: unknown names and backends that cannot run here."""
    from ..kernels import BACKENDS, get_backend

    if name not in ("auto", *BACKENDS):
        raise UsageError(f"--backend {name!r}: expected one of auto, {', '.join(BACKENDS)}")
    return get_backend(name).name  # BackendUnavailableError names the reason


def memory_budget(args: argparse.Namespace) -> int:
    """The memory budget [bytes] from --max-memory, $SFRT_MAX_MEMORY or the available memory."""
    from ..memory import memory_budget_bytes

    return memory_budget_bytes(getattr(args, "max_memory", None))


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "sfrt: warning: " if record.levelno == logging.WARNING else (
            "sfrt: error: " if record.levelno >= logging.ERROR else "sfrt: ")
        return prefix + record.getMessage()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning(str(message))


def configure_logging(args: argparse.Namespace) -> None:
    """Log to stderr (INFO with -v, WARNING otherwise) and, with --log FILE, INFO to that file."""
    reset_logging()
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(level)
    stream.setFormatter(_OneLine())
    handlers: list[logging.Handler] = [stream]
    if getattr(args, "log", None) is not None:
        if not str(args.log).strip():
            raise UsageError("--log is empty: expected a file name, e.g. --log run.log")
        try:
            file = logging.FileHandler(args.log, mode="a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log {args.log}: cannot write the log file ({exc.strerror or exc}); "
                             "choose a writable place") from None
        file.setLevel(logging.INFO)
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file)
    root = logging.getLogger()
    root.setLevel(min(h.level for h in handlers))
    for h in handlers:
        root.addHandler(h)
    _HANDLERS.extend(handlers)
    warnings.showwarning = _show_warning


def reset_logging() -> None:
    """Remove the handlers :func:`configure_logging` added (main() may run many times in one process)."""
    root = logging.getLogger()
    for h in _HANDLERS:
        root.removeHandler(h)
        h.close()
    _HANDLERS.clear()
    warnings.showwarning = _SHOWWARNING


class Stages:
    """Progress callback that logs ``stage: NAME`` and the time each stage took (seen with -v or --log).

    ``stages("building the phantom")`` ends the previous stage, logging its time, and starts the next;
    ``stages.done()`` ends the last one and logs the total.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.start = self._t = time.perf_counter()
        self._name: str | None = None

    def _end(self) -> None:
        if self._name is not None:
            log.info(f"{self.command}: {self._name}: {time.perf_counter() - self._t:.2f} s")

    def __call__(self, name: str) -> None:
        self._end()
        self._name, self._t = name, time.perf_counter()
        log.info(f"{self.command}: stage: {name}")

    def done(self) -> None:
        self._end()
        self._name = None
        log.info(f"{self.command}: total {time.perf_counter() - self.start:.2f} s")
