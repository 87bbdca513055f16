"""Inverse planning: dose operators, objectives and the optimiser (DESIGN 10).

- :mod:`.operators`: forward (weights -> dose on a voxel subset) and adjoint dose operators on
  every backend, matrix-free or with a sparse influence matrix.
"""

from .operators import DoseOperator, dose_operator

__all__ = ["DoseOperator", "dose_operator"]
