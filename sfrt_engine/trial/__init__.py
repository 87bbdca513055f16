"""Trial endpoints: response assessment (RECIST 1.1, Choi, modified Choi), endpoint statistics per arm
(ORR, local control, PFS, toxicity), sample size and power, and dose-response against the dosimetry.

Independent of dose (DESIGN 10): nothing here imports the kernels; the dosimetry joins by patient ID.

Example::

    from sfrt_engine import trial
    measurements = trial.load_measurements("measurements.csv")
    arms = trial.load_arms("arms.csv", experimental_arm="SFRT")
    result = trial.assess(measurements, arms)
    orr, comparison = trial.orr_tables(result)
"""

from __future__ import annotations

from .arms import Arms, load_arms, parse_arms
from .assessment import CRITERIA, Assessment, assess
from .best_response import best_overall_response
from .choi import choi_timepoints
from .measurements import COLUMNS, load_measurements, parse_measurements
from .recist import recist_timepoints

__all__ = [
           "COLUMNS",
           "CRITERIA",
           "Arms",
           "Assessment",
           "assess",
           "best_overall_response",
           "choi_timepoints",
           "load_arms",
           "load_measurements",
           "parse_arms",
           "parse_measurements",
           "recist_timepoints",
]
