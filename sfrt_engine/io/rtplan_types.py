"""What reading an RT Plan or RT Ion Plan gives: the engine's beams and the plan's fraction group."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RTPlanData"]


@dataclass(frozen=True)
class RTPlanData:
    """A DICOM RT (Ion) Plan converted for the engine.

    Attributes
    ----------
    beams : tuple
        Engine beams (:class:`~sfrt_engine.plan.Beam` for photons, :class:`~sfrt_engine.plan.ProtonBeam`
        for protons), weighted for one fraction as planned (the fraction group's beam meterset).
    fractions_planned : int
        NumberOfFractionsPlanned of the fraction group.
    plan_label : str
        RTPlanLabel.
    sop_instance_uid : str
        SOPInstanceUID of the plan (what an RT Dose computed from it references).
    frame_of_reference_uid : str
    referenced_structure_set_uid : str or None
        SOPInstanceUID of the RT Structure Set the plan references, if any.
    modality : {"photon", "proton"}
    beam_meterset_mu : tuple of float
        Beam meterset per fraction [MU], one per beam, in the order of ``beams``.
    """

    beams: tuple
    fractions_planned: int
    plan_label: str
    sop_instance_uid: str
    frame_of_reference_uid: str
    referenced_structure_set_uid: str | None
    modality: str
    beam_meterset_mu: tuple
