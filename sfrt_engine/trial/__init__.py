"""Trial endpoints: response assessment (RECIST 1.1, Choi, modified Choi), endpoint statistics per arm
(ORR, local control, PFS, toxicity), sample size and power, and dose-response against the dosimetry.

Independent of dose (DESIGN 10): nothing here imports the kernels; the dosimetry joins by patient ID.

Example::

    from sfrt_engine import trial
    measurements = trial.load_measurements("measurements.csv")
    arms = trial.load_arms("arms.csv", experimental_arm="SFRT")
    result = trial.assess(measurements, arms)
    orr, comparison = trial.orr_tables(result)
    survival, fits = trial.survival_tables(result)
    print(trial.sample_size(0.15, 0.40, alpha=0.05, power=0.8, one_sided=True, dropout=0.10))
"""

from __future__ import annotations

from .arms import Arms, load_arms, parse_arms
from .assessment import CRITERIA, Assessment, assess
from .best_response import best_overall_response
from .choi import choi_timepoints
from .dose_response import METRICS, dose_response_table, fit_logistic, load_dosimetry
from .endpoints import clopper_pearson, compare_proportions, orr_tables
from .example import generate_cohort, write_example
from .measurements import COLUMNS, load_measurements, parse_measurements
from .recist import recist_timepoints
from .report import format_endpoint_table, write_response_report
from .sample_size import power_exact, power_monte_carlo, sample_size
from .survival import survival_tables
from .toxicity import load_toxicity, toxicity_table

__all__ = [
    "COLUMNS", "CRITERIA", "METRICS", "Arms", "Assessment", "assess", "best_overall_response", "choi_timepoints",
    "clopper_pearson", "compare_proportions", "dose_response_table", "fit_logistic", "format_endpoint_table",
    "generate_cohort", "load_arms", "load_dosimetry", "load_measurements", "load_toxicity", "orr_tables",
    "parse_arms", "parse_measurements", "power_exact", "power_monte_carlo", "recist_timepoints", "sample_size",
    "survival_tables", "toxicity_table", "write_example", "write_response_report",
]
