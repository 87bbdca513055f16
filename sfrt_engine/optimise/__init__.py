"""Inverse planning: dose operators, objectives and the optimiser (DESIGN 10).

- :mod:`.operators`: forward (weights -> dose on a voxel subset) and adjoint dose operators on
  every backend, matrix-free or with a sparse influence matrix.
- :mod:`.objectives`: what a plan should do, with gradients with respect to voxel dose.
- :mod:`.goals`: goal sets from TOML.
- :mod:`.optimiser`: L-BFGS-B on non-negative weights through a dose operator.
"""

from .operators import DoseOperator, dose_operator

__all__ = ["DoseOperator", "dose_operator"]

from . import objectives
from .goals import DEFAULT_GOALS_FILE, GOAL_TYPES, Goal, GoalSet, default_goals, goals_from_dict, load_goals
from .objectives import (
    DvhMax,
    DvhMin,
    Geud,
    MaxDose,
    MeanDose,
    MinDose,
    Objective,
    SquaredDeviation,
    SquaredOverdose,
    SquaredUnderdose,
    Valley,
)
from .optimiser import OptimisationResult, OptimisationWarning, optimise, sampled_structures, voxel_subset

__all__ += ["DEFAULT_GOALS_FILE", "GOAL_TYPES", "DvhMax", "DvhMin", "Geud", "Goal", "GoalSet", "MaxDose", "MeanDose",
            "MinDose", "Objective", "OptimisationResult", "OptimisationWarning", "SquaredDeviation", "SquaredOverdose",
            "SquaredUnderdose", "Valley", "default_goals", "goals_from_dict", "load_goals", "objectives", "optimise",
            "sampled_structures", "voxel_subset"]
