"""Relative biological effectiveness (RBE): which dose quantity a plan's numbers are in.

Photon doses are physical (absorbed) dose in Gy. Proton doses are reported, prescribed
and turned into EQD2 as RBE-weighted dose, D_RBE = RBE x D_physical, with the constant
clinical RBE of 1.1 (ICRU Report 78, "Prescribing, Recording, and Reporting Proton-Beam
Therapy", J ICRU 7(2), 2007; reviewed in H. Paganetti, "Relative biological effectiveness
(RBE) values for proton beam therapy", Phys Med Biol 59:R419-R472, 2014). The unit is then
written Gy(RBE), as ICRU 78 recommends. Variable-RBE models (LET dependence near the end of
range) are not applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import PlanError

__all__ = ["PROTON_RBE", "RBE_SOURCE", "beams_rbe", "components_dose_quantity", "dose_name", "dose_quantity",
           "dose_unit"]

#: Constant proton RBE relative to 60Co/MV photons (ICRU Report 78, 2007; Paganetti, PMB 59:R419, 2014).
PROTON_RBE = 1.1
#: How the RBE was applied, for reports and DICOM descriptions.
RBE_SOURCE = "constant RBE 1.1 (ICRU Report 78, 2007; Paganetti, Phys Med Biol 59:R419, 2014)"


def beams_rbe(beams: Iterable) -> float:
    """RBE of a field set: 1.0 for photon beams, :data:`PROTON_RBE` for proton beams.

    Parameters
    ----------
    beams : iterable of Beam or ProtonBeam

    Raises
    ------
    PlanError
        If photon and proton beams are mixed (their doses would need different weights).
    """
    from .plan.protons import ProtonBeam

    kinds = {isinstance(b, ProtonBeam) for b in beams}
    if kinds == {True, False}:
        raise PlanError("a plan component mixes photon and proton beams; build one component per modality so "
                        "that the proton dose can be RBE-weighted (RBE 1.1) and the photon dose not")
    return PROTON_RBE if kinds == {True} else 1.0


def dose_unit(rbe: float) -> str:
    """``"Gy"`` for photons, ``"Gy(RBE)"`` for an RBE-weighted dose."""
    return "Gy" if rbe == 1.0 else "Gy(RBE)"


def dose_name(rbe: float) -> str:
    """``"physical dose"`` for photons, ``"RBE-weighted dose"`` otherwise."""
    return "physical dose" if rbe == 1.0 else "RBE-weighted dose"


def dose_quantity(rbe: float) -> dict:
    """Report entry stating the dose quantity: name, unit, RBE and how it was applied.

    Returns
    -------
    dict
        ``{"quantity", "unit", "rbe", "model"}``; ``model`` cites the source for protons.
    """
    rbe = float(rbe)
    if rbe == 1.0:
        return {"quantity": "physical dose", "unit": "Gy", "rbe": 1.0, "model": "photons: absorbed dose, no RBE"}
    source = RBE_SOURCE if rbe == PROTON_RBE else f"constant RBE {rbe:g}"
    return {"quantity": "RBE-weighted dose", "unit": "Gy(RBE)", "rbe": rbe,
            "model": f"protons: physical dose x {rbe:g}, {source}; EQD2 computed on the RBE-weighted dose"}


def components_dose_quantity(rbe_by_component: dict) -> dict:
    """:func:`dose_quantity` of a run whose components may differ in modality.

    Parameters
    ----------
    rbe_by_component : dict of str to float
        E.g. ``{"CRT": 1.0, "BOOST": 1.1}`` (a photon CRT plan with a proton boost).

    Returns
    -------
    dict
        :func:`dose_quantity` of the common RBE; where they differ, the RBE-weighted entry with
        ``rbe`` the largest and ``rbe_by_component`` listing each.
    """
    values = {name: float(v) for name, v in rbe_by_component.items()}
    if len(set(values.values())) <= 1:
        return dose_quantity(next(iter(values.values()), 1.0))
    out = dose_quantity(max(values.values()))
    out["rbe_by_component"] = values
    out["model"] = (f"proton components x {out['rbe']:g} ({RBE_SOURCE}), photon components absorbed dose (RBE 1); "
                    "EQD2 computed on the summed RBE-weighted dose")
    return out
