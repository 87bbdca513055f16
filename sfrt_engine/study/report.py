"""Cohort plots from a study table (``sfrt study report``).

- ``eqd2_vs_vertex_dose_<technique>_<lattice>_<alpha/beta set>.png``: per arm, EQD2 metrics
  (vertex peak, valley, target gEUD, femur D2) against the vertex dose per session; one
  ribbon per schedule (median across patients, band from the 25th to the 75th percentile).
  The CRT arm does not depend on the vertex dose: its ribbon is flat, dashed.
- ``pvdr_vs_target_volume_<technique>_<lattice>.png``: physical PVDR of the SFRT arm against
  the target volume, per patient: cumulative over the course and of one boost session (colour:
  vertex dose; marker: fractions, vertex sessions and boost mode).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .._files import atomic_path
from ..errors import StudyFileError
from .results import read_results

__all__ = ["EQD2_PANELS", "write_report"]

#: (column, axis label) of the EQD2 panels; a panel is left out when its column is absent.
EQD2_PANELS = (("eqd2_peak_gy", "vertex peak EQD2 [Gy]"), ("eqd2_valley_gy", "valley EQD2 [Gy]"),
               ("geud_gy", "target gEUD (EQD2) [Gy]"), ("femur_eqd2_d2_gy", "femur D2 (EQD2) [Gy]"))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


def _schedule_label(row: dict) -> str:
    if row["arm"] == "CRT":
        return f"CRT {row['crt_fractions']} fx"
    return f"SFRT {row['crt_fractions']} fx + {row['vertex_sessions']} vertex ({row['boost_mode']})"


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _eqd2_figure(rows: list[dict], title: str, path: Path) -> Path:
    plt = _pyplot()

    panels = [(c, label) for c, label in EQD2_PANELS if any(r.get(c) is not None for r in rows)]
    doses = sorted({r["vertex_dose_gy"] for r in rows})
    span = (doses[0] - 0.5, doses[-1] + 0.5)
    labels = list(dict.fromkeys(_schedule_label(r) for r in sorted(rows, key=lambda r: r["arm"])))
    colours = dict(zip(labels, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    n_patients = len({r["patient_id"] for r in rows})
    for ax, (column, ylabel) in zip(axes[0], panels):
        for label in labels:
            sel = [r for r in rows if _schedule_label(r) == label and r.get(column) is not None]
            xs = sorted({r["vertex_dose_gy"] for r in sel})
            stats = np.array([np.percentile([r[column] for r in sel if r["vertex_dose_gy"] == x], [25, 50, 75])
                              for x in xs])
            if label.startswith("CRT"):  # the CRT arm has no vertex dose: one flat ribbon
                q = np.percentile([r[column] for r in sel], [25, 50, 75])
                ax.plot(span, [q[1]] * 2, "--", color=colours[label], label=label)
                ax.fill_between(span, q[0], q[2], color=colours[label], alpha=0.15)
                continue
            ax.plot(xs, stats[:, 1], "o-", color=colours[label], label=label)
            ax.fill_between(xs, stats[:, 0], stats[:, 2], color=colours[label], alpha=0.25)
            ax.vlines(xs, stats[:, 0], stats[:, 2], color=colours[label], alpha=0.6)
        ax.set_xlabel("vertex dose per session [Gy]")
        ax.set_ylabel(ylabel)
        ax.set_xlim(*span)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{title}: median and interquartile range over {n_patients} patients", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _pvdr_figure(rows: list[dict], title: str, path: Path) -> Path:
    plt = _pyplot()

    sfrt = [r for r in rows if r["arm"] == "SFRT"]
    first_set = sfrt[0]["alpha_beta_set"]
    sfrt = [r for r in sfrt if r["alpha_beta_set"] == first_set]  # physical PVDR does not depend on alpha/beta
    kinds = list(dict.fromkeys((r["crt_fractions"], r["vertex_sessions"], r["boost_mode"]) for r in sfrt))
    markers = dict(zip(kinds, "osD^v<>phP*X8"))
    doses = [r["vertex_dose_gy"] for r in sfrt]
    norm = plt.Normalize(min(doses) - 0.5, max(doses) + 0.5)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, column, subtitle in ((axes[0], "pvdr", "SFRT arm, cumulative over the course"),
                                 (axes[1], "boost_session_pvdr", "one vertex-boost session")):
        for kind, marker in markers.items():
            sel = [r for r in sfrt if (r["crt_fractions"], r["vertex_sessions"], r["boost_mode"]) == kind]
            points = ax.scatter([r["target_volume_cc"] for r in sel], [r[column] for r in sel], marker=marker, s=26,
                                c=[r["vertex_dose_gy"] for r in sel], cmap="viridis", norm=norm, edgecolors="k",
                                linewidths=0.3, label=f"{kind[0]} fx + {kind[1]} vertex ({kind[2]})")
        ax.set_title(subtitle, fontsize=10)
        ax.set_xlabel("target volume [cm³]")
        ax.set_ylabel("PVDR (physical dose)")
        ax.grid(alpha=0.3)
    fig.colorbar(points, ax=axes, label="vertex dose per session [Gy]", fraction=0.04, pad=0.02)
    handles, labels = axes[0].get_legend_handles_labels()
    for h in handles:
        h.set_facecolor("lightgrey")
    axes[0].legend(handles, labels, fontsize=7, loc="upper right", title="schedule", title_fontsize=7)
    n_patients = len({r["patient_id"] for r in sfrt})
    fig.suptitle(f"{title}: PVDR against target volume, {n_patients} patients", fontsize=10)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def write_report(results, folder) -> list[Path]:
    """Write the cohort plots of a study table into ``folder``.

    Parameters
    ----------
    results : str or Path
        Anything :func:`~sfrt_engine.study.read_results` accepts (the study output folder, ...).
    folder : str or Path
        Where the PNGs go (created if needed).

    Returns
    -------
    list of Path
    """
    rows = read_results(results).to_pylist()
    if not rows:
        raise StudyFileError(f"the study table at {results} has no rows (no job finished); run the study, then "
                             "`sfrt study status` lists the failed jobs and their reasons")
    folder = Path(folder)
    paths = []
    groups = dict.fromkeys((r["technique"], r["lattice"], r["alpha_beta_set"]) for r in rows)
    for technique, lattice, ab_set in groups:
        sel = [r for r in rows if (r["technique"], r["lattice"], r["alpha_beta_set"]) == (technique, lattice, ab_set)]
        name = f"eqd2_vs_vertex_dose_{_safe(technique)}_{_safe(lattice)}_{_safe(ab_set)}.png"
        paths.append(_eqd2_figure(sel, f"{technique}, lattice {lattice}, alpha/beta {ab_set}", folder / name))
    for technique, lattice in dict.fromkeys((r["technique"], r["lattice"]) for r in rows):
        sel = [r for r in rows if (r["technique"], r["lattice"]) == (technique, lattice)]
        name = f"pvdr_vs_target_volume_{_safe(technique)}_{_safe(lattice)}.png"
        paths.append(_pvdr_figure(sel, f"{technique}, lattice {lattice}", folder / name))
    return paths
