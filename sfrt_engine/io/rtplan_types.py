"""What reading a DICOM RT Plan or RT Ion Plan gives: the engine's beams and the plan's identity."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RT_ION_PLAN_SOP_CLASS_UID", "RT_PLAN_SOP_CLASS_UID", "RTPlanData"]

#: SOP Class UIDs (DICOM PS3.4 Annex B.5, Standard SOP Classes).
RT_PLAN_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.481.8"


@dataclass(frozen=True, eq=False)
class RTPlanData:
    """A plan read from DICOM, mapped onto the engine's beams.

    Attributes
    ----------
    beams : tuple
        The engine's beams in plan order: :class:`~sfrt_engine.plan.Beam` (static photon
        beams and step-and-shoot / sliding-window fields), :class:`~sfrt_engine.plan.Arc`
        (VMAT arcs) or :class:`~sfrt_engine.plan.ProtonBeam`. Their weights carry the
        plan's meterset for one fraction.
    beam_meterset_mu : tuple of float
        Beam Meterset of each beam for one fraction [MU], from the fraction group, in the
        order of ``beams``.
    beam_names : tuple of str
        Beam Name (or Beam Number when the name is absent) of each beam.
    fractions_planned : int or None
        Number of Fractions Planned of the (first) fraction group.
    plan_label : str
    sop_instance_uid : str
    frame_of_reference_uid : str
    referenced_structure_set_uid : str or None
        SOP Instance UID of the RT Structure Set the plan references, if any.
    modality : {"photon", "proton"}
    deliveries : tuple
        The beams as delivered, one record per beam in the order of ``beams`` (for photons
        :class:`~sfrt_engine.plan.BeamDelivery`: control points, jaws, MLC); empty when the
        reader keeps none. Writing these back gives the same control points.
    """

    beams: tuple
    beam_meterset_mu: tuple
    beam_names: tuple
    fractions_planned: int | None
    plan_label: str
    sop_instance_uid: str
    frame_of_reference_uid: str
    referenced_structure_set_uid: str | None
    modality: str
    deliveries: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "beams", tuple(self.beams))
        object.__setattr__(self, "beam_meterset_mu", tuple(float(m) for m in self.beam_meterset_mu))
        object.__setattr__(self, "beam_names", tuple(str(n) for n in self.beam_names))
        object.__setattr__(self, "deliveries", tuple(self.deliveries))
        if self.modality not in ("photon", "proton"):
            raise ValueError(f"modality={self.modality!r}: expected 'photon' or 'proton'")
        if not (len(self.beams) == len(self.beam_meterset_mu) == len(self.beam_names)):
            raise ValueError(f"{len(self.beams)} beams, {len(self.beam_meterset_mu)} metersets and "
                             f"{len(self.beam_names)} names: expected one of each per beam")

    def all_beams(self) -> list:
        """The beams as one flat list for ``compute_dose`` (an arc contributes its control-point beams)."""
        out = []
        for beam in self.beams:
            if isinstance(beam, list):
                out.extend(beam)
            else:
                out.append(beam)
        return out
