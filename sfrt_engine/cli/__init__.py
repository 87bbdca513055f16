"""The ``sfrt`` command line: one module per subcommand, each with ``register(subparsers)``.

``sfrt compare`` the main job: SFRT versus CRT on the built-in sarcoma phantom (per-arm table,
                 report.json, EQD2 slices and dose/EQD2-volume histograms).
``sfrt info``    backends, build features and devices.
``sfrt dose``    5-beam conformal photon plan on the built-in sarcoma phantom: per-structure
                 summary and a PNG dose slice.
``sfrt trial``   trial endpoints: RECIST 1.1 / Choi response, ORR, local control, PFS, toxicity,
                 dose-response, the sample size, and a synthetic example cohort.
``sfrt study``   cohort studies from a study file: init, run (local pool or Dask), status, report.
``sfrt recompute`` a DICOM RT Plan recomputed on its CT; with its RT Dose, gamma (TG-218) and DVH
                 differences.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand modules, in the order ``sfrt --help`` lists them.
SUBCOMMANDS = ("compare", "info", "dose", "trial", "study", "recompute")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ._common import common_options

    parser = argparse.ArgumentParser(prog="sfrt", description="SFRT vs CRT dose engine",
                                     parents=[common_options(top_level=True)])
    parser.add_argument("--version", action="version", version=f"sfrt-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


#: Exit status of a run stopped by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal number, as a shell reports it.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the result folder is left as it was."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    from ..errors import SfrtError
    from ._common import configure_logging, reset_logging

    old_sigterm = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        configure_logging(args)
        if getattr(args, "beams", 1) < 1:
            parser.error(f"--beams {args.beams}: expected at least 1")
        return args.func(args)
    except SfrtError as exc:
        print(f"sfrt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        print(f"sfrt: {what}; no half-written results were left", file=sys.stderr)
        return EXIT_SIGTERM if isinstance(exc, _Terminated) else EXIT_SIGINT
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
        reset_logging()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
