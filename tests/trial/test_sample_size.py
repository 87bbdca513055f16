"""Sample size against the protocol, Fleiss's published table and an independent implementation (statsmodels)."""

from __future__ import annotations

import itertools

import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, samplesize_proportions_2indep_onetail

from sfrt_engine.trial.sample_size import power_exact, power_monte_carlo, rejection_region, sample_size


def test_protocol_53_per_arm():
    # NCT06980259: 40 % vs 15 % ORR, one-sided alpha 0.05, power 0.8 -> 47 per arm, 53 with 10 % drop-out
    s = sample_size(0.15, 0.40, alpha=0.05, power=0.8, one_sided=True, dropout=0.10)
    assert s.corrected_per_arm == 47
    assert s.enrol_per_arm == 53 and s.total == 106          # ceil(47 / 0.9) = ceil(52.2)
    assert s.n_corrected == pytest.approx(46.04, abs=0.01)


@pytest.mark.parametrize(("p1", "p2", "published"), [
    # Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and Proportions, 3rd ed. (2003), Table A.4:
    # sample size per group, continuity-corrected, two-sided alpha 0.05, power 0.80
    (0.05, 0.10, 474), (0.05, 0.15, 160), (0.05, 0.20, 88), (0.10, 0.20, 219),
])
def test_fleiss_table(p1, p2, published):
    assert sample_size(p1, p2, alpha=0.05, power=0.8, one_sided=False).corrected_per_arm == published


@pytest.mark.parametrize(("p1", "p2", "alpha", "power", "one_sided"),
                         [(0.15, 0.40, 0.05, 0.8, True), (0.05, 0.10, 0.05, 0.8, False), (0.3, 0.5, 0.01, 0.9, False),
                          (0.6, 0.4, 0.025, 0.85, True)])
def test_uncorrected_and_arcsine_match_statsmodels(p1, p2, alpha, power, one_sided):
    s = sample_size(p1, p2, alpha=alpha, power=power, one_sided=one_sided)
    alternative = ("larger" if p2 > p1 else "smaller") if one_sided else "two-sided"
    ref = samplesize_proportions_2indep_onetail(p2 - p1, p1, power, alpha=alpha, alternative=alternative)
    assert s.n_uncorrected == pytest.approx(ref, rel=1e-9)
    h = proportion_effectsize(p2, p1)
    ref_as = NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power,
                                          alternative="larger" if one_sided else "two-sided")
    # statsmodels' two-sided power also counts the far tail (about 1e-6 of the size here); the formula does not
    assert s.n_arcsine == pytest.approx(ref_as, rel=1e-5)


def test_rejection_region_matches_scipy_tests():
    nc, ne = 9, 11
    chi = rejection_region(nc, ne, 0.05, True, "chi2_yates")
    fis = rejection_region(nc, ne, 0.05, True, "fisher")
    fis2 = rejection_region(nc, ne, 0.05, False, "fisher")
    for xc, xe in itertools.product(range(nc + 1), range(ne + 1)):
        table = [[xe, ne - xe], [xc, nc - xc]]
        assert fis[xc, xe] == (stats.fisher_exact(table, alternative="greater").pvalue <= 0.05)
        two = 2 * min(stats.fisher_exact(table, alternative="greater").pvalue,
                      stats.fisher_exact(table, alternative="less").pvalue)
        assert fis2[xc, xe] == (min(1.0, two) <= 0.05)
        if 0 < xc + xe < nc + ne:
            chi2 = stats.chi2_contingency(table, correction=True).statistic
            z = (1 if xe / ne > xc / nc else -1) * chi2 ** 0.5
            assert chi[xc, xe] == (z >= stats.norm.ppf(0.95))
        else:
            assert not chi[xc, xe]


def test_monte_carlo_power_agrees_with_exact_and_is_seeded():
    exact = power_exact(47, 0.15, 0.40)
    sim, se = power_monte_carlo(47, 0.15, 0.40, n_sim=20000, seed=7)
    assert abs(sim - exact) < 4 * se
    assert power_monte_carlo(47, 0.15, 0.40, n_sim=20000, seed=7) == (sim, se)
    # the corrected size is meant to give the nominal power for the corrected chi-square test
    assert 0.78 < exact < 0.84
    assert power_exact(39, 0.15, 0.40) < exact          # the uncorrected size is short of it


@pytest.mark.parametrize("kwargs", [{"p_control": 0.0}, {"p_experimental": 1.2}, {"p_experimental": 0.15},
                                    {"alpha": 0.7}, {"power": 1.0}, {"dropout": 1.0}])
def test_bad_arguments(kwargs):
    args = {"p_control": 0.15, "p_experimental": 0.40, "alpha": 0.05, "power": 0.8, "dropout": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        sample_size(**args)
