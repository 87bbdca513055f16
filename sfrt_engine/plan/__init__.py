"""Plans: beam geometry, beams and the builders that make them."""

from .arcs import Arc, ControlPoint, arc_gantry_angles, conformal_arc, refine_leaf_pair_fluence
from .beam import Beam
from .builders import body_entry_point, conformal_beams, open_field
from .geometry import BeamFrame, beam_frame
from .impt import impt_beams
from .protons import ProtonBeam, SpotLayer
from .schedule import Schedule, Session, crt_schedule, sfrt_schedule
from .techniques import ImrtTechnique, Technique, available_techniques, get_technique, register_technique
from .vertices import VertexLattice, place_vertices

__all__ = ["Beam", "BeamFrame", "beam_frame", "body_entry_point", "conformal_beams", "open_field", "Schedule",
           "Session", "crt_schedule", "sfrt_schedule", "ImrtTechnique", "Technique", "available_techniques",
           "get_technique", "register_technique", "VertexLattice", "place_vertices"]
__all__ += ["Arc", "ControlPoint", "arc_gantry_angles", "conformal_arc", "refine_leaf_pair_fluence"]
__all__ += ["ProtonBeam", "SpotLayer", "impt_beams"]
from .delivery import BeamDelivery, delivery_to_beams
from .mlc import aperture_fluence, sequence_fluence
from .segments import beams_to_deliveries

__all__ += ["BeamDelivery", "delivery_to_beams", "aperture_fluence", "sequence_fluence", "beams_to_deliveries"]
