"""Trial figures: waterfall of best change in size, spider plots over visits, Kaplan-Meier curves
and dose-response curves, one panel per arm or endpoint. Each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BOR_COLOURS", "save_dose_response", "save_km", "save_spider", "save_waterfall"]

#: Colour per best overall response (colour-blind-safe Okabe-Ito palette).
BOR_COLOURS = {"CR": "#009E73", "PR": "#56B4E9", "SD": "#999999", "PD": "#D55E00", "NE": "#E69F00"}
ARM_COLOURS = ("#0072B2", "#D55E00")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thresholds(ax, horizontal=True) -> None:
    for value, text in ((20, "+20 % (PD)"), (-30, "-30 % (PR)")):
        ax.axhline(value, color="black", lw=0.8, ls="--")
        ax.text(1.0, value, f" {text}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)


def save_waterfall(path, patients, arms: tuple[str, str], criterion: str = "recist", title: str = "") -> Path:
    """Best % change of the sum of target diameters per patient, sorted, one panel per arm."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110, sharey=True)
    for ax, arm in zip(axes, arms):
        g = patients[(patients["arm"] == arm) & patients["best_change_pct"].notna()]
        g = g.sort_values("best_change_pct", ascending=False)
        colours = [BOR_COLOURS[b] for b in g[f"bor_{criterion}"]]
        ax.bar(range(len(g)), g["best_change_pct"], color=colours, width=0.85)
        _thresholds(ax)
        ax.set_title(f"{arm} (n = {len(g)} with a measured follow-up visit)")
        ax.set_xlabel("patients, sorted")
        ax.set_xticks([])
    axes[0].set_ylabel("best change in sum of target diameters [%]")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in BOR_COLOURS.values()]
    fig.legend(handles, [f"best response {k}" for k in BOR_COLOURS], loc="lower center", fontsize=8, ncol=5,
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle(title or f"Waterfall: best change in size ({criterion.upper()} best overall response)", x=0.02,
                 ha="left")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def save_spider(path, visits, patients, arms: tuple[str, str], criterion: str = "recist", title: str = "") -> Path:
    """% change of the sum of target diameters from baseline over time, one line per patient, one panel per arm."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110, sharey=True, sharex=True)
    bor = dict(zip(patients["patient_id"], patients[f"bor_{criterion}"]))
    for ax, arm in zip(axes, arms):
        g = visits[(visits["arm"] == arm) & visits["complete"]]
        for pid, rows in g.groupby("patient_id", sort=False):
            days = [0, *rows["visit_day"]]
            pct = [0.0, *rows["change_baseline_pct"]]
            ax.plot([d / (365.25 / 12) for d in days], pct, color=BOR_COLOURS[bor.get(pid, "NE")], lw=0.9,
                    alpha=0.8, marker="o", ms=2)
        _thresholds(ax)
        ax.set_title(f"{arm} (n = {g['patient_id'].nunique()})")
        ax.set_xlabel("time from baseline [months]")
    axes[0].set_ylabel("change in sum of target diameters [%]")
    handles = [plt.Line2D([], [], color=c) for c in BOR_COLOURS.values()]
    fig.legend(handles, [f"best response {k}" for k in BOR_COLOURS], loc="lower center", fontsize=8, ncol=5,
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle(title or "Spider plot: change in size over visits (RECIST 1.1 baseline reference)", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def save_km(path, fits: dict, table, arms: tuple[str, str], title: str = "") -> Path:
    """Kaplan-Meier curves with 95 % bands per arm: local control and PFS side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    names = {"local_control": "Local control (RECIST 1.1 target PD)", "pfs": "Progression-free survival"}
    for ax, endpoint in zip(axes, ("local_control", "pfs")):
        for colour, arm in zip(ARM_COLOURS, arms):
            kmf = fits.get((endpoint, arm))
            if kmf is None:
                continue
            sf = kmf.survival_function_
            ci = kmf.confidence_interval_survival_function_
            months = sf.index.to_numpy() / (365.25 / 12)
            row = table[(table["endpoint"] == endpoint) & (table["arm"] == arm)].iloc[0]
            ax.step(months, sf.iloc[:, 0], where="post", color=colour,
                    label=f"{arm}: n = {row['n']}, {row['events']} events, 1 y {row['at_1y']:.0%}")
            ax.fill_between(months, ci.iloc[:, 0], ci.iloc[:, 1], step="post", color=colour, alpha=0.15)
            censored = kmf.event_table[kmf.event_table["censored"] > 0].index.to_numpy()
            if len(censored):
                ax.plot(censored / (365.25 / 12), kmf.survival_function_at_times(censored).to_numpy(), "|",
                        color=colour, ms=7)
        p = table.loc[table["endpoint"] == endpoint, "logrank_p"].iloc[0]
        ax.axvline(12, color="black", lw=0.6, ls=":")
        ax.set_title(f"{names[endpoint]}; log-rank p = {p:.3f}")
        ax.set_xlabel("time from baseline [months]")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylabel("probability (KM, 95 % band; | = censored)")
    fig.suptitle(title or "Kaplan-Meier estimates per arm", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def save_dose_response(path, joined, fits: dict, arms: tuple[str, str], criterion: str = "recist",
                       title: str = "") -> Path:
    """Fitted logistic curve with its 95 % band and the observed responses per arm, one panel per metric."""
    import numpy as np

    from .dose_response import METRICS, LogisticFit

    plt = _plt()
    metrics = list(fits)
    ncol = min(2, len(metrics))
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 4.2 * nrow), dpi=110, squeeze=False)
    rng = np.random.default_rng(0)  # vertical jitter of the 0/1 points only
    for ax, metric in zip(axes.ravel(), metrics):
        fit = fits[metric]
        x_all = joined[metric].to_numpy(dtype=float)
        for colour, arm in zip(ARM_COLOURS, arms):
            g = joined[joined["arm"] == arm]
            y = g["responder"].to_numpy(dtype=float)
            ax.plot(g[metric], y + rng.uniform(-0.03, 0.03, len(y)), "o", color=colour, ms=4, alpha=0.7,
                    label=f"{arm} observed")
        if isinstance(fit, LogisticFit):
            grid = np.linspace(np.nanmin(x_all), np.nanmax(x_all), 200)
            p, low, high = fit.predict(grid)
            ax.plot(grid, p, color="black", label="logistic fit")
            ax.fill_between(grid, low, high, color="black", alpha=0.12, label="95 % pointwise band")
            ax.set_title(f"OR {fit.odds_ratio_per_unit:.3g} per unit ({fit.odds_ratio_ci[0]:.3g}-"
                         f"{fit.odds_ratio_ci[1]:.3g}), p = {fit.b1_p:.3f}", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no fit:\n" + fit[:120], transform=ax.transAxes, ha="center", va="center", fontsize=8,
                    wrap=True)
        ax.set_xlabel(METRICS.get(metric, (metric,))[0])
        ax.set_ylabel(f"P(response), best {criterion.upper()}")
        ax.set_ylim(-0.08, 1.08)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    labels = [lab.split(" (n =")[0] for lab in labels]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title or "Dose-response: best overall response (CR/PR = 1) against the dosimetry; points "
                 "jittered vertically", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
