"""Sample size and power for comparing two response proportions (1:1 randomisation).

Per arm, for control and experimental proportions p1, p2, d = |p2 - p1|, p = (p1 + p2)/2,
q = 1 - p, and normal quantiles z_a (z_{1-alpha}, or z_{1-alpha/2} two-sided) and z_b
(z_{power}):

- uncorrected (Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and
  Proportions, 3rd ed., Wiley 2003, eq. 4.14)::

      n = [z_a sqrt(2 p q) + z_b sqrt(p1 q1 + p2 q2)]^2 / d^2

- continuity-corrected (Fleiss JL, Tytun A, Ury HK. A simple approximation for
  calculating sample sizes for comparing independent proportions. Biometrics
  1980;36:343-346), the formula of Fleiss's Table A.4 and of the protocol::

      n' = n/4 [1 + sqrt(1 + 4 / (n d))]^2

- arcsine (Cohen J. Statistical Power Analysis for the Behavioral Sciences, 2nd ed.,
  1988, chapter 6; effect size h = 2 asin sqrt(p2) - 2 asin sqrt(p1))::

      n = 2 (z_a + z_b)^2 / h^2

Each is rounded up to whole patients. Drop-out inflates the corrected size:
``ceil(n' / (1 - dropout))``; for the protocol (0.15 vs 0.40, one-sided alpha 0.05,
power 0.8, 10 % drop-out) that is ceil(47 / 0.9) = 53 per arm, 106 in all.

Power is checked two ways for a given n per arm: exactly, by summing the binomial
probabilities of every outcome (x1, x2) in which the test rejects, and by Monte Carlo with
a seed. Tests: the one-sided Yates-corrected chi-square (the test the continuity-corrected
formula approximates) and Fisher's exact test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["TESTS", "SampleSize", "power_exact", "power_monte_carlo", "rejection_region", "sample_size"]

#: Tests for the power checks.
TESTS = ("chi2_yates", "fisher")


@dataclass(frozen=True)
class SampleSize:
    """Sample sizes per arm (floats before rounding; ``*_per_arm`` rounded up)."""

    p_control: float
    p_experimental: float
    alpha: float
    power: float
    one_sided: bool
    dropout: float
    n_uncorrected: float
    n_corrected: float
    n_arcsine: float
    uncorrected_per_arm: int
    corrected_per_arm: int
    arcsine_per_arm: int
    enrol_per_arm: int

    @property
    def total(self) -> int:
        return 2 * self.enrol_per_arm

    def to_dict(self) -> dict:
        return dict(asdict(self), total=self.total, formula="Fleiss, Tytun & Ury (1980) continuity-corrected")


def _check(p_control, p_experimental, alpha, power, dropout=0.0):
    for name, v in (("p_control", p_control), ("p_experimental", p_experimental)):
        if not 0 < v < 1:
            raise ValueError(f"{name} {v}: expected a proportion strictly between 0 and 1")
    if p_control == p_experimental:
        raise ValueError(f"p_control and p_experimental are both {p_control}: no difference to detect")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha {alpha}: expected 0 < alpha < 0.5")
    if not 0 < power < 1:
        raise ValueError(f"power {power}: expected 0 < power < 1")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout {dropout}: expected a fraction 0 <= dropout < 1")


def sample_size(p_control: float, p_experimental: float, alpha: float = 0.05, power: float = 0.8,
                one_sided: bool = True, dropout: float = 0.0) -> SampleSize:
    """Per-arm sample size by the corrected, uncorrected and arcsine formulas (module docstring)."""
    from scipy.stats import norm

    _check(p_control, p_experimental, alpha, power, dropout)
    p1, p2 = p_control, p_experimental
    z_a = float(norm.ppf(1 - alpha) if one_sided else norm.ppf(1 - alpha / 2))
    z_b = float(norm.ppf(power))
    d = abs(p2 - p1)
    p = (p1 + p2) / 2
    n = (z_a * math.sqrt(2 * p * (1 - p)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / d ** 2
    n_cc = n / 4 * (1 + math.sqrt(1 + 4 / (n * d))) ** 2
    h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    n_as = 2 * (z_a + z_b) ** 2 / h ** 2
    per_arm = math.ceil(n_cc - 1e-9)  # guard against 47.000000000001 from rounding in the quantiles
    enrol = math.ceil(per_arm / (1 - dropout) - 1e-9)
    return SampleSize(p1, p2, alpha, power, one_sided, dropout, n, n_cc, n_as, math.ceil(n - 1e-9), per_arm,
                      math.ceil(n_as - 1e-9), enrol)


def rejection_region(n_control: int, n_experimental: int, alpha: float = 0.05, one_sided: bool = True,
                     test: str = "chi2_yates"):
    """Boolean table ``reject[x_control, x_experimental]`` over every possible outcome.

    ``chi2_yates``: the Yates-corrected chi-square, chi2 = N (|ad - bc| - N/2)_+^2 /
    (r1 r2 c1 c2) (the same value as ``scipy.stats.chi2_contingency(correction=True)``),
    signed by the direction of the difference; one-sided rejects when the signed root is
    >= z_{1-alpha}, two-sided when |root| >= z_{1-alpha/2}. ``fisher``: one-sided
    hypergeometric upper tail <= alpha; two-sided doubles the smaller tail.
    """
    import numpy as np
    from scipy.stats import hypergeom, norm

    if test not in TESTS:
        raise ValueError(f"test {test!r}: expected one of {', '.join(TESTS)}")
    xc, xe = np.meshgrid(np.arange(n_control + 1), np.arange(n_experimental + 1), indexing="ij")
    total = n_control + n_experimental
    responders = xc + xe
    if test == "fisher":
        upper = hypergeom.sf(xe - 1, total, responders, n_experimental)
        if one_sided:
            return upper <= alpha
        lower = hypergeom.cdf(xe, total, responders, n_experimental)
        return np.minimum(1.0, 2 * np.minimum(upper, lower)) <= alpha
    a, b = xe, n_experimental - xe
    c, d = xc, n_control - xc
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    excess = np.maximum(np.abs(a * d - b * c) - total / 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(margins > 0, total * excess ** 2 / np.where(margins > 0, margins, 1), 0.0)
    z = np.sign(xe / n_experimental - xc / n_control) * np.sqrt(chi2)
    return z >= norm.ppf(1 - alpha) if one_sided else np.abs(z) >= norm.ppf(1 - alpha / 2)


def power_exact(n_per_arm: int, p_control: float, p_experimental: float, alpha: float = 0.05,
                one_sided: bool = True, test: str = "chi2_yates") -> float:
    """Exact power: the binomial probability of the rejection region."""
    import numpy as np
    from scipy.stats import binom

    reject = rejection_region(n_per_arm, n_per_arm, alpha, one_sided, test)
    k = np.arange(n_per_arm + 1)
    prob = np.outer(binom.pmf(k, n_per_arm, p_control), binom.pmf(k, n_per_arm, p_experimental))
    return float(prob[reject].sum())


def power_monte_carlo(n_per_arm: int, p_control: float, p_experimental: float, alpha: float = 0.05,
                      one_sided: bool = True, test: str = "chi2_yates", n_sim: int = 20000,
                      seed: int = 20240601) -> tuple[float, float]:
    """Simulated power and its Monte Carlo standard error.

    Draws ``n_sim`` trials of ``n_per_arm`` patients per arm (numpy ``default_rng(seed)``)
    and applies the test to each.
    """
    import numpy as np

    if n_sim < 1:
        raise ValueError(f"n_sim {n_sim}: expected at least 1 simulated trial")
    rng = np.random.default_rng(seed)
    xc = rng.binomial(n_per_arm, p_control, n_sim)
    xe = rng.binomial(n_per_arm, p_experimental, n_sim)
    reject = rejection_region(n_per_arm, n_per_arm, alpha, one_sided, test)[xc, xe]
    power = float(reject.mean())
    return power, math.sqrt(power * (1 - power) / n_sim)
