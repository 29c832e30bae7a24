"""PBT exploit/explore (EPBT's Baseline 2): truncation, perturbation, clipping, rounding."""

import numpy as np
import pytest
from lcsim.hpo_sim.live.pbt import PBT_SPACE, PBTConfig, exploit, explore
from lcsim.hpo_sim.live.population import HSpace
from scipy import stats


def test_exploit_copies_top_quarter_over_bottom_quarter():
    fitness = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4])
    dst, src = exploit(fitness, np.random.default_rng(0))
    assert sorted(dst.tolist()) == [1, 5]          # the two worst
    assert set(src.tolist()) <= {2, 6}             # drawn from the two best


def test_explore_perturbs_by_08_or_12_or_resamples_with_probability_quarter():
    rng = np.random.default_rng(1)
    h = np.full((4000, 1), 0.01)
    new, resampled = explore(h, PBT_SPACE, rng)
    assert stats.binomtest(int(resampled.sum()), h.size, 0.25).pvalue > 1e-3
    ratios = new[~resampled] / 0.01
    assert np.allclose(np.sort(np.unique(ratios.round(9))), [0.8, 1.2])
    assert stats.binomtest(int((ratios < 1).sum()), ratios.size, 0.5).pvalue > 1e-3


def test_explore_clips_to_bounds_and_rounds_integers():
    space = HSpace.build([("lr", 1e-4, 0.1, True), ("width", 1, 10, False, True)])
    h = np.tile([0.1, 3.0], (500, 1))   # lr at its upper bound; 3 * 1.2 = 3.6 -> 4, 3 * 0.8 -> 2
    new, resampled = explore(h, space, np.random.default_rng(2), PBTConfig(p_resample=0.0))
    assert not resampled.any()
    assert new[:, 0].max() <= 0.1 and set(np.round(new[:, 0], 9)) == {0.08, 0.1}
    assert set(new[:, 1].tolist()) == {2.0, 4.0}   # rounded, not truncated (3.6 -> 4, 2.4 -> 2)


def test_pbt_config_rejects_bad_values():
    with pytest.raises(ValueError, match="frac"):
        PBTConfig(frac=0.75)
