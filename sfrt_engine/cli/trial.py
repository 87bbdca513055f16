"""``sfrt trial``: trial endpoints (RECIST 1.1 / Choi response, ORR, local control, PFS, toxicity,
dose-response), the sample size, and a synthetic example cohort.

``sfrt trial sample-size``  per-arm sample size (Fleiss-Tytun-Ury corrected, uncorrected, arcsine) and power
``sfrt trial response``     classify a measurement table and write the endpoint tables and plots
``sfrt trial example``      write the SYNTHETIC 106-patient example cohort
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def cmd_sample_size(args: argparse.Namespace) -> int:
    from ..errors import TrialDataError
    from ..trial.sample_size import power_exact, power_monte_carlo, sample_size

    try:
        s = sample_size(args.p_control, args.p_experimental, args.alpha, args.power, args.one_sided, args.dropout)
    except ValueError as exc:
        raise TrialDataError(f"sample size: {exc}") from None
    sided = "one-sided" if args.one_sided else "two-sided"
    print(f"Two-arm comparison of response proportions, 1:1: control {s.p_control:g} vs experimental "
          f"{s.p_experimental:g}, alpha {s.alpha:g} {sided}, power {s.power:g}")
    print("formula: continuity-corrected normal approximation, Fleiss, Tytun & Ury (1980), "
          "n' = n/4 [1 + sqrt(1 + 4/(n |p2 - p1|))]^2")
    print(f"per arm before drop-out: {s.corrected_per_arm}  (n' = {s.n_corrected:.2f})")
    print(f"per arm after {100 * s.dropout:g} % drop-out: {s.enrol_per_arm}  (ceil({s.corrected_per_arm} / "
          f"{1 - s.dropout:g})); total {s.total}")
    print(f"beside it: uncorrected (Fleiss) {s.uncorrected_per_arm} per arm (n = {s.n_uncorrected:.2f}); "
          f"arcsine (Cohen's h) {s.arcsine_per_arm} per arm (n = {s.n_arcsine:.2f})")
    n = s.corrected_per_arm
    for test, label in (("chi2_yates", "Yates-corrected chi-square"), ("fisher", "Fisher's exact test")):
        exact = power_exact(n, s.p_control, s.p_experimental, s.alpha, s.one_sided, test)
        sim, se = power_monte_carlo(n, s.p_control, s.p_experimental, s.alpha, s.one_sided, test, args.n_sim,
                                    args.seed)
        print(f"power at {n} per arm, {label}: exact {exact:.4f}; Monte Carlo {sim:.4f} +- {se:.4f} "
              f"({args.n_sim} trials, seed {args.seed})")
    return 0


def _filters(items) -> dict:
    from ..errors import TrialDataError

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TrialDataError(f"--dosimetry-filter {item!r}: expected COLUMN=VALUE, e.g. vertex_dose_gy=12")
        out[key] = value
    return out


def _times(text: str) -> tuple[float, ...]:
    from ..errors import TrialDataError

    try:
        times = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        times = ()
    if not times or any(t <= 0 for t in times):
        raise TrialDataError(f"--times {text!r}: expected positive months separated by commas, e.g. 3,6,9,12")
    return times


def cmd_response(args: argparse.Namespace) -> int:
    from ..trial.report import format_endpoint_table, write_response_report

    report = write_response_report(
        args.measurements, args.arms, args.out, experimental_arm=args.experimental_arm,
        select_targets=args.select_targets, confirm=args.confirm, confirm_days=args.confirm_days,
        min_sd_days=args.min_sd_days, times_months=_times(args.times),
        window_days=args.window_days, toxicity=args.toxicity, dosimetry=args.dosimetry or (),
        dosimetry_filters=_filters(args.dosimetry_filter), dose_criterion=args.dose_criterion,
        plots=not args.no_plots)
    print(format_endpoint_table(report))
    if report.dose_response is not None:
        print()
        for r in report.dose_response.to_dict("records"):
            if r.get("note"):
                print(f"dose-response {r['metric']}: {r['note']}")
            else:
                print(f"dose-response {r['metric']:15s} n {r['n']:3d}  OR per unit {r['odds_ratio_per_unit']:.3f} "
                      f"({r['or_ci_low']:.3f}-{r['or_ci_high']:.3f}), p {r['b1_p']:.4f}, D50 {r['d50']:.2f}")
    print(f"\nwrote {len(report.files)} files to {report.out}")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    from ..trial.example import LABEL, write_example

    files = write_example(args.out, args.seed)
    print(LABEL)
    print(f"wrote {', '.join(f.name for f in files)} to {Path(args.out)}")
    print(f"next: sfrt trial response {Path(args.out) / 'measurements.csv'} --arms {Path(args.out) / 'arms.csv'} "
          f"--toxicity {Path(args.out) / 'toxicity.csv'} --dosimetry {Path(args.out) / 'dosimetry.parquet'} "
          f"--out trial_results")
    return 0


def register(sub) -> None:
    from ..trial.example import SEED
    from ._common import common_options

    p = sub.add_parser("trial", help="trial endpoints: response (RECIST 1.1, Choi), ORR, LC, PFS, sample size",
                       parents=[common_options()])
    tsub = p.add_subparsers(dest="trial_command", required=True)

    s = tsub.add_parser("sample-size", help="per-arm sample size for two response proportions, and its power",
                        parents=[common_options()])
    s.add_argument("--p-control", type=float, required=True, help="response proportion of the control arm")
    s.add_argument("--p-experimental", type=float, required=True, help="response proportion of the experimental arm")
    s.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    s.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    sided = s.add_mutually_exclusive_group()
    sided.add_argument("--one-sided", dest="one_sided", action="store_true", default=True,
                       help="one-sided test (default)")
    sided.add_argument("--two-sided", dest="one_sided", action="store_false", help="two-sided test")
    s.add_argument("--dropout", type=float, default=0.0, help="expected drop-out fraction (default 0)")
    s.add_argument("--n-sim", type=int, default=20000, help="Monte Carlo trials for the power check (default 20000)")
    s.add_argument("--seed", type=int, default=20240601, help="Monte Carlo seed (default 20240601)")
    s.set_defaults(func=cmd_sample_size)

    r = tsub.add_parser("response", help="classify lesion measurements and write endpoint tables and plots",
                        parents=[common_options()])
    r.add_argument("measurements", help="lesion measurement table, CSV or Parquet (one row per patient, lesion, visit)")
    r.add_argument("--arms", required=True, help="arms table, CSV or Parquet (patient_id, arm[, death_day])")
    r.add_argument("--out", default="trial_results", help="result folder, replaced as a whole (default trial_results)")
    r.add_argument("--experimental-arm", default="SFRT", help="name of the experimental arm (default SFRT)")
    r.add_argument("--select-targets", choices=("largest",), default=None,
                   help="with more than 5 targets (2 per organ): keep the largest (default: error)")
    r.add_argument("--confirm", action="store_true", help="require confirmation of CR/PR (RECIST 1.1 Table 3)")
    r.add_argument("--confirm-days", type=int, default=28, help="days to a confirming scan (default 28)")
    r.add_argument("--min-sd-days", type=int, default=42, help="minimum days from baseline for SD (default 42)")
    r.add_argument("--times", default="3,6,9,12", help="ORR assessment times in months (default 3,6,9,12)")
    r.add_argument("--window-days", type=float, default=30.0, help="visit window around each time (default 30)")
    r.add_argument("--toxicity", default=None, help="CTCAE v5.0 table (patient_id, category, grade)")
    r.add_argument("--dosimetry", nargs="*", default=None, metavar="FILE",
                   help="study table(s) (.parquet/.csv) and/or report.json files (ID=path names the patient)")
    r.add_argument("--dosimetry-filter", nargs="*", default=None, metavar="COLUMN=VALUE",
                   help="select one schedule of the study table, e.g. vertex_dose_gy=12")
    r.add_argument("--dose-criterion", choices=("recist", "choi", "mchoi"), default="recist",
                   help="best overall response used as the dose-response outcome (default recist)")
    r.add_argument("--no-plots", action="store_true", help="tables only")
    r.set_defaults(func=cmd_response)

    e = tsub.add_parser("example", help="write the SYNTHETIC 106-patient example cohort", parents=[common_options()])
    e.add_argument("--out", default="trial_example", help="folder to write (default trial_example)")
    e.add_argument("--seed", type=int, default=SEED, help=f"generator seed (default {SEED}, the documented one)")
    e.set_defaults(func=cmd_example)
