"""Small measurement tables built in the test, cell by cell, as a CSV reader would see them (text)."""

from __future__ import annotations

import pandas as pd
import pytest

from sfrt_engine.trial.measurements import COLUMNS


class TableBuilder:
    """Rows of the tidy measurement table; ``add`` takes the cells as they would be written in a CSV."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, patient, lesion, day, diameter, density="", *, target=True, node=False, organ="soft tissue",
            new=False, ntp=False):
        self.rows.append({"patient_id": patient, "lesion_id": lesion, "visit_day": str(day), "organ": organ,
                          "is_target": str(target).lower(), "is_node": str(node).lower(),
                          "diameter_mm": str(diameter), "density_hu": str(density), "new_lesion": str(new).lower(),
                          "nontarget_progression": str(ntp).lower()})
        return self

    def series(self, patient, diameters, densities=None, days=None, **kw):
        """One target lesion 'L1' over visits (baseline first), days 0, 90, 180, ... unless given."""
        days = days or [90 * i for i in range(len(diameters))]
        densities = densities or [""] * len(diameters)
        for day, dia, hu in zip(days, diameters, densities):
            self.add(patient, "L1", day, dia, hu, **kw)
        return self

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))


@pytest.fixture
def table():
    return TableBuilder()


@pytest.fixture
def arms_frame():
    def make(mapping: dict) -> pd.DataFrame:
        return pd.DataFrame({"patient_id": list(mapping), "arm": list(mapping.values())})

    return make
