"""The ``sfrt`` command line: one module per subcommand, each with ``register(subparsers)``.

``sfrt compare`` the main job: SFRT versus CRT on the built-in sarcoma phantom (per-arm table,
                 report.json, EQD2 slices and dose/EQD2-volume histograms).
``sfrt info``    backends, build features and devices.
``sfrt dose``    5-beam conformal photon plan on the built-in sarcoma phantom: per-structure
                 summary and a PNG dose slice.
``sfrt trial``   trial endpoints: RECIST 1.1 / Choi response, ORR, local control, PFS, toxicity,
                 dose-response, the sample size, and a synthetic example cohort.
``sfrt study``   cohort studies from a study file: init, run (local pool or Dask), status, report.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand modules, in the order ``sfrt --help`` lists them.
SUBCOMMANDS = ("compare", "info", "dose", "trial", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfrt", description="SFRT vs CRT dose engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's choices")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if getattr(args, "beams", 1) < 1:
        parser.error(f"--beams {args.beams}: expected at least 1")
    from ..errors import SfrtError

    try:
        return args.func(args)
    except SfrtError as exc:
        print(f"sfrt: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
