"""Arms and their fraction schedules (DESIGN 5.4; trial NCT06980259).

A schedule is a list of real treatment sessions; each session is a weighted sum
of plan components, each component's unit dose being fixed:

- ``"CRT"``: one conventional fraction (PTV D95 = the CRT dose per fraction);
- ``"BOOST"``: the vertex-boost field set scaled to a vertex mean of 1 Gy.

CRT arm: ``n`` CRT sessions. SFRT arm: the same CRT plus a vertex boost in the
first session of weeks 1..m (5 sessions per week), either

- ``"integrated"``: that session is CRT + b BOOST, with b chosen so that the vertex
  mean of the session reaches the prescribed vertex dose (b = D_v - CRT vertex mean), or
- ``"separate"``: an extra session of D_v BOOST alone on that day.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from ..errors import PlanError

__all__ = ["Session", "Schedule", "crt_schedule", "sfrt_schedule", "BOOST_MODES", "SESSIONS_PER_WEEK",
           "CRT_DOSE_PER_FRACTION_GY", "PROTOCOL_CRT_FRACTIONS", "PROTOCOL_VERTEX_SESSIONS", "PROTOCOL_VERTEX_DOSE_GY"]

BOOST_MODES = ("integrated", "separate")
SESSIONS_PER_WEEK = 5
#: Conventional arm dose per fraction of the reference protocol [Gy].
CRT_DOSE_PER_FRACTION_GY = 3.0


@dataclass(frozen=True)
class Session:
    """One real treatment session.

    Attributes
    ----------
    day : int
        Treatment day, 0-based, counting only treatment days (5 per week).
    weights : tuple of (component, weight)
        Component weights summed in this session (dose = sum w * unit dose).
    label : str
    """

    day: int
    weights: tuple[tuple[str, float], ...]
    label: str = "crt"

    def weight(self, component: str) -> float:
        return dict(self.weights).get(component, 0.0)


@dataclass(frozen=True)
class Schedule:
    """Sessions of one arm, with the settings that made them."""

    arm: str
    sessions: tuple[Session, ...]
    settings: dict = field(default_factory=dict)

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    def grouped(self) -> list[tuple[dict[str, float], int]]:
        """Distinct session weightings with their counts, in first-seen order."""
        counts: dict[tuple, int] = {}
        for s in self.sessions:
            key = tuple(sorted(s.weights))
            counts[key] = counts.get(key, 0) + 1
        return [(dict(k), n) for k, n in counts.items()]

    def total_weights(self) -> dict[str, float]:
        """Sum of each component's weight over all sessions (for the cumulative physical dose)."""
        out: dict[str, float] = {}
        for s in self.sessions:
            for c, w in s.weights:
                out[c] = out.get(c, 0.0) + w
        return out

    def to_dict(self) -> dict:
        return {"arm": self.arm, "n_sessions": self.n_sessions, **self.settings,
                "sessions": [{"day": s.day, "label": s.label, "weights": dict(s.weights)} for s in self.sessions]}


#: The reference protocol's limits (NCT06980259): CRT fractions, vertex sessions, vertex dose per session [Gy].
PROTOCOL_CRT_FRACTIONS = (15, 20)
PROTOCOL_VERTEX_SESSIONS = (3, 4)
PROTOCOL_VERTEX_DOSE_GY = (8.0, 15.0)
_OFF_PROTOCOL_HINT = "; for dose-escalation research beyond the protocol use off_protocol=True (--off-protocol)"


def _check_int(value, name: str, lo: int, hi: int, off_protocol: bool = False) -> int:
    """An integer within the protocol's [lo, hi], or any integer >= 1 off protocol."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or int(value) != value:
        raise PlanError(f"{name}={value!r}: expected an integer")
    if off_protocol:
        if int(value) < 1:
            raise PlanError(f"{name}={value!r}: expected an integer of 1 or more")
    elif not lo <= int(value) <= hi:
        raise PlanError(f"{name}={value!r}: expected an integer from {lo} to {hi} (protocol NCT06980259)"
                        + _OFF_PROTOCOL_HINT)
    return int(value)


def crt_schedule(crt_fractions: int = 20, off_protocol: bool = False) -> Schedule:
    """Conventional arm: ``crt_fractions`` (15-20; any number >= 1 with ``off_protocol``) sessions of one CRT
    fraction each."""
    n = _check_int(crt_fractions, "crt_fractions", *PROTOCOL_CRT_FRACTIONS, off_protocol)
    sessions = tuple(Session(day=k, weights=(("CRT", 1.0),), label="crt") for k in range(n))
    return Schedule("CRT", sessions, {"crt_fractions": n, "crt_dose_per_fraction_gy": CRT_DOSE_PER_FRACTION_GY})


def sfrt_schedule(crt_fractions: int = 20, vertex_sessions: int = 4, vertex_dose_gy: float = 12.0,
                  boost_mode: str = "integrated", crt_vertex_mean_gy: float | None = None,
                  off_protocol: bool = False) -> Schedule:
    """SFRT arm: the CRT schedule plus weekly vertex boosts (see the module docstring).

    Parameters
    ----------
    crt_fractions : int
        15 to 20.
    vertex_sessions : int
        3 or 4 boosted weeks (the first session of weeks 1..m).
    vertex_dose_gy : float
        Prescribed vertex dose per vertex session, 8 to 15 Gy.
    boost_mode : {"integrated", "separate"}
    crt_vertex_mean_gy : float
        Vertex mean dose of one CRT fraction [Gy]; needed for "integrated".
    off_protocol : bool
        Allow values outside the protocol's limits (any fraction and session counts >= 1, any finite
        vertex dose above 0 Gy) for dose-escalation research; the week structure still applies.
    """
    n = _check_int(crt_fractions, "crt_fractions", *PROTOCOL_CRT_FRACTIONS, off_protocol)
    m = _check_int(vertex_sessions, "vertex_sessions", *PROTOCOL_VERTEX_SESSIONS, off_protocol)
    lo, hi = PROTOCOL_VERTEX_DOSE_GY
    if isinstance(vertex_dose_gy, bool) or not isinstance(vertex_dose_gy, numbers.Real) or not (
            math.isfinite(vertex_dose_gy) and vertex_dose_gy > 0):
        raise PlanError(f"vertex_dose_gy={vertex_dose_gy!r}: expected a dose above 0 Gy per vertex session")
    if not off_protocol and not lo <= float(vertex_dose_gy) <= hi:
        raise PlanError(f"vertex_dose_gy={vertex_dose_gy!r}: expected {lo:g} to {hi:g} Gy per vertex session "
                        "(NCT06980259)" + _OFF_PROTOCOL_HINT)
    if boost_mode not in BOOST_MODES:
        raise PlanError(f"boost_mode={boost_mode!r}: expected one of {', '.join(BOOST_MODES)}")
    dv = float(vertex_dose_gy)
    if SESSIONS_PER_WEEK * (m - 1) >= n:
        raise PlanError(f"vertex_sessions={m} needs at least {SESSIONS_PER_WEEK * (m - 1) + 1} CRT fractions "
                        f"(the vertex session opens week {m}), got crt_fractions={n}")
    boost_days = {SESSIONS_PER_WEEK * w for w in range(m)}
    sessions: list[Session] = []
    if boost_mode == "integrated":
        if crt_vertex_mean_gy is None or not crt_vertex_mean_gy >= 0:
            raise PlanError("boost_mode='integrated' needs crt_vertex_mean_gy, the vertex mean of one CRT fraction")
        b = dv - float(crt_vertex_mean_gy)
        if b <= 0:
            raise PlanError(f"vertex dose {dv:g} Gy is not above the CRT fraction's vertex mean "
                            f"{crt_vertex_mean_gy:.2f} Gy: nothing to boost")
        for k in range(n):
            if k in boost_days:
                sessions.append(Session(k, (("BOOST", b), ("CRT", 1.0)), "crt+vertex"))
            else:
                sessions.append(Session(k, (("CRT", 1.0),), "crt"))
    else:
        for k in range(n):
            sessions.append(Session(k, (("CRT", 1.0),), "crt"))
            if k in boost_days:
                sessions.append(Session(k, (("BOOST", dv),), "vertex"))
    settings = {"crt_fractions": n, "crt_dose_per_fraction_gy": CRT_DOSE_PER_FRACTION_GY, "vertex_sessions": m,
                "vertex_dose_gy": dv, "boost_mode": boost_mode, "boost_days": sorted(boost_days),
                "sessions_per_week": SESSIONS_PER_WEEK}
    return Schedule("SFRT", tuple(sessions), settings)
