"""Cohort plots (to be written)."""
