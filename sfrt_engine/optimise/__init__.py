"""Inverse planning: dose objectives, goal files and the fluence optimiser (DESIGN 10).

One idea per module: ``objectives`` (what a plan should do, with gradients), ``goals``
(goal sets from TOML), ``optimiser`` (L-BFGS-B through a dose operator).
"""

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
from .optimiser import OptimisationResult, OptimisationWarning, optimise, voxel_subset

__all__ = ["DEFAULT_GOALS_FILE", "GOAL_TYPES", "DvhMax", "DvhMin", "Geud", "Goal", "GoalSet", "MaxDose", "MeanDose",
           "MinDose", "Objective", "OptimisationResult", "OptimisationWarning", "SquaredDeviation", "SquaredOverdose",
           "SquaredUnderdose", "Valley", "default_goals", "goals_from_dict", "load_goals", "objectives", "optimise",
           "voxel_subset"]
