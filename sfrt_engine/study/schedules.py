"""Schedule grids: many schedules from one set of unit doses.

Dose is linear in the component weights, so :func:`evaluate_schedules` computes the
CRT and BOOST unit doses once (or reuses a :class:`~sfrt_engine.compare.Prepared`)
and evaluates every combination of vertex dose, vertex sessions, CRT fractions,
boost mode and alpha/beta by re-weighting them; only biology is recomputed.

Example::

    import sfrt_engine as se
    rows = se.study.evaluate_schedules(vertex_dose_gy=[8, 10, 12, 15], vertex_sessions=[3, 4],
                                       crt_fractions=[15, 20], boost_mode=["integrated", "separate"])
    se.study.save_csv(rows, "study.csv")
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from .._files import atomic_path
from ..biology import alpha_beta_map
from ..compare import ComparisonSettings, Prepared, arm_schedule, evaluate_arm, prepare
from ..errors import PlanError
from ..patient import Patient
from ..plan.schedule import SESSIONS_PER_WEEK, sfrt_schedule

__all__ = ["ROW_STRUCTURES", "evaluate_schedules", "save_csv"]

#: Structures whose statistics go into each row.
ROW_STRUCTURES = ("GTV", "VERTICES", "VALLEY", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE")


def _as_list(value) -> list:
    if isinstance(value, (str, dict)) or not hasattr(value, "__iter__"):
        return [value]
    out = list(value)
    if not out:
        raise PlanError("every study axis needs at least one value")
    return out


def _ab_label(ab: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in sorted(ab.items())) or "defaults"


def _row(arm: str, params: dict, entry: dict) -> dict:
    row = {"arm": arm, **params, "boost_mode": params["boost_mode"] if arm == "SFRT" else "none",
           "n_sessions": entry["schedule"]["n_sessions"]}
    metrics = entry["sfrt_metrics"]
    for key in ("peak_gy", "valley_gy", "pvdr", "d10_d90", "gtv_d50_gy", "geud_gy"):
        row[key] = metrics[key]
    for key in ("peak_gy", "valley_gy", "pvdr", "d10_d90", "gtv_d50_gy"):
        row[f"eqd2_{key}"] = metrics["eqd2"][key]
    for name in ROW_STRUCTURES:
        if name not in entry["structures"]:
            continue
        for kind in ("physical", "eqd2"):
            stats = entry["structures"][name][kind]
            for key in ("mean_gy", "d95_gy", "d2_gy", "max_gy"):
                row[f"{name.lower()}_{'phys' if kind == 'physical' else 'eqd2'}_{key}"] = stats[key]
    return row


def evaluate_schedules(prepared: Prepared | None = None, *, patient: Patient | None = None,
                       settings: ComparisonSettings | None = None, vertex_dose_gy=(8.0, 10.0, 12.0, 15.0),
                       vertex_sessions=(3, 4), crt_fractions=(15, 20), boost_mode=("integrated", "separate"),
                       alpha_beta_gy=({},)) -> list[dict]:
    """Evaluate every schedule of the grid on both arms, without recomputing dose.

    Parameters
    ----------
    prepared : Prepared, optional
        Unit doses and vertices from :func:`sfrt_engine.compare.prepare` or a
        comparison's ``.prepared``; computed once from ``patient`` and ``settings``
        (default: the sarcoma phantom and default settings) when not given.
    vertex_dose_gy, vertex_sessions, crt_fractions, boost_mode : value or sequence
        Axes of the schedule grid (protocol ranges: 8-15 Gy, 3-4, 15-20). Combinations
        whose m weekly vertex sessions do not fit in n fractions (m = 4 needs n >= 16)
        are left out of the table.
    alpha_beta_gy : dict or sequence of dict
        Alpha/beta overrides per structure (each dict is one point of the grid).

    Returns
    -------
    list of dict
        One row per schedule and arm (arm "CRT" then "SFRT" for each grid point),
        with the grid parameters, the SFRT metrics (physical and EQD2) and per-structure
        mean/D95/D2/max of physical dose and EQD2, all cumulative over the arm.
    """
    axes = [_as_list(a) for a in (vertex_dose_gy, vertex_sessions, crt_fractions, boost_mode, alpha_beta_gy)]
    fitting = [(m, n) for m in axes[1] for n in axes[2] if SESSIONS_PER_WEEK * (int(m) - 1) < int(n)]
    if not fitting:
        # no schedule of the protocol in the grid: the schedule builder names the first combination and the fix
        sfrt_schedule(axes[2][0], axes[1][0], axes[0][0], axes[3][0], crt_vertex_mean_gy=0.0)
    if prepared is None:
        from ..phantoms import sarcoma_thigh

        prepared = prepare(patient if patient is not None else sarcoma_thigh(), settings or ComparisonSettings())
    rows: list[dict] = []
    ab_maps: dict[str, object] = {}
    entries: dict[tuple, dict] = {}
    for dv, m, n, mode, ab in itertools.product(*axes):
        if SESSIONS_PER_WEEK * (int(m) - 1) >= int(n):
            continue  # week m never starts: not a schedule of the protocol
        label = _ab_label(ab)
        if label not in ab_maps:
            ab_maps[label] = alpha_beta_map(prepared.patient, ab)
        params = {"vertex_dose_gy": float(dv), "vertex_sessions": int(m), "crt_fractions": int(n),
                  "boost_mode": mode, "alpha_beta": label}
        for arm in ("CRT", "SFRT"):
            # the CRT arm depends only on the fractions and alpha/beta: evaluate it once per pair
            key = (arm, int(n), label) if arm == "CRT" else (arm, int(n), label, float(dv), int(m), mode)
            if key not in entries:
                schedule = arm_schedule(prepared, arm, n, m, dv, mode)
                entries[key] = evaluate_arm(prepared, schedule, ab_maps[label])[2]
            rows.append(_row(arm, params, entries[key]))
    return rows


def save_csv(rows: list[dict], path) -> Path:
    """Write study rows as CSV (header from the union of keys, in first-seen order), atomically."""
    if not rows:
        raise PlanError("no rows to save")
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
