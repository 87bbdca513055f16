"""``sfrt info``: backends, build features and devices."""

from __future__ import annotations

import argparse
import importlib
import json

from ._common import common_options

__all__ = ["register"]


def _backend_details(name: str) -> dict:
    """Build information and devices a backend module reports, without needing it to run."""
    from ..kernels import BACKENDS

    details: dict = {}
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        return {"error": str(exc)}
    for attr in ("build_info", "devices"):
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        try:
            details[attr] = fn()
        except Exception as exc:  # noqa: BLE001 - report, do not fail: info must always print
            details[attr] = f"unavailable: {exc}"
    return details


def cmd_info(args: argparse.Namespace) -> int:
    import sfrt_engine as se

    backends = se.available_backends()
    report = {"version": se.__version__, "backends": {}}
    for name, (ok, reason) in backends.items():
        entry = {"available": ok, "reason": reason}
        entry.update(_backend_details(name))
        report["backends"][name] = entry
    try:
        report["auto"] = se.get_backend("auto").name
    except se.BackendUnavailableError as exc:
        report["auto"] = f"none ({exc})"
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"sfrt-engine {se.__version__}")
    print(f"backend 'auto' picks: {report['auto']}")
    for name, entry in report["backends"].items():
        state = "available" if entry["available"] else "unavailable"
        print(f"  {name:6s} {state:11s} {entry['reason'] if not entry['available'] else ''}".rstrip())
        info = entry.get("build_info")
        if isinstance(info, dict):
            keys = ("version", "openmp", "max_threads", "compiler", "cuda_architectures", "cuda_runtime_version")
            shown = ", ".join(f"{k}={info[k]}" for k in keys if k in info)
            print(f"         build: {shown}")
        elif info is not None:
            print(f"         build: {info}")
        devices = entry.get("devices")
        if devices is not None:
            if isinstance(devices, list):
                print(f"         devices: {', '.join(str(d.get('name', d)) for d in devices) or 'none'}")
            else:
                print(f"         devices: {devices}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="backends, build features and devices", parents=[common_options()])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
