"""Plans: beam geometry, beams and the builders that make them."""

from .beam import Beam
from .builders import body_entry_point, conformal_beams, open_field
from .geometry import BeamFrame, beam_frame

__all__ = ["Beam", "BeamFrame", "beam_frame", "body_entry_point", "conformal_beams", "open_field"]
