"""Learning-curve rules (lce, svr, gp, successive halving) with known answers, and two contracts
checked for every rule: no stop before its first epoch, no decision that reads the future."""

import math

import numpy as np
import pytest
from lcsim.hpo_sim.replay import (
    LCE,
    Decision,
    Goal,
    GPRule,
    Job,
    ReplayConfig,
    ReplayState,
    SuccessiveHalving,
    SVRRule,
    epoch_costs,
    parse_rule,
    replay,
)
from lcsim.hpo_sim.replay.rules.curves import FAMILIES, SHAPES, fit_curves
from lcsim.hpo_sim.replay.rules.sh import rungs
from lcsim.hpo_sim.replay.rules.svr import svr_features
from lcsim.tabular.testing import make_table

T = 50
X = np.arange(1.0, T + 1.0)
# one exact curve per least-squares shape (exp4 = Janoschek = Weibull, Hill3 = log power)
EXACT = {
    "pow3": 0.9 - 0.6 * X ** -0.5,
    "pow4": 0.9 - (0.5 * X + 1.0) ** -0.8,
    "mmf": 0.85 - (0.85 - 0.1) / (1.0 + (0.2 * X) ** 1.5),
    "janoschek": 0.8 - 0.7 * np.exp(-0.3 * X ** 0.7),
    "weibull": 0.9 - 0.8 * np.exp(-(0.1 * X) ** 1.2),
    "vap": np.exp(-0.1 - 1.5 / X + 0.01 * np.log(X)),
    "log_power": 0.9 / (1.0 + (X / np.exp(1.5)) ** -1.2),
    "ilog2": 0.95 - 0.5 / np.log(X + 1.0),
    "loglog_linear": np.log(0.3 * np.log(X) + 1.2),
}


def _state(curves, completed=(), features=None):
    """A state holding `curves` [n, T] as observed, with `completed` rows finished."""
    s = ReplayState(np.asarray(curves, dtype=float), 10, features=features)
    for r in completed:
        s.complete(r)
    return s


def _judge(rule, s, row, epoch):
    """The rule's decision on `row` at `epoch`, `row` being the candidate (its features are the
    ones the rule reads)."""
    s.observe(row, epoch, float(s.acc[row, epoch - 1]))
    return rule.decide(s.acc[row, :epoch], epoch, s)


# ----- lce -------------------------------------------------------------------------------------
def test_the_eleven_families_of_the_paper_are_all_fitted():
    assert len(FAMILIES) == 11
    assert sorted(f for s in SHAPES for f in s.families) == sorted(FAMILIES)


@pytest.mark.parametrize("family", sorted(EXACT))
def test_lce_recovers_the_final_value_of_an_exact_curve_from_half_of_it(family):
    y = EXACT[family]
    d = LCE().decide(y[:T // 2], T // 2, _state([y]))
    assert abs(d.predicted - y[-1]) <= 0.01 * y[-1]
    assert d.std < 0.01
    assert math.isnan(d.prob) and not d.stop  # no incumbent: predict, never stop


def test_lce_stops_a_curve_whose_asymptote_is_clearly_below_the_incumbent():
    incumbent = 0.9 - 0.5 * X ** -0.7
    low = 0.6 - 0.5 * X ** -0.7  # the same shape, 0.3 lower
    high = 0.95 - 0.9 * np.exp(-0.08 * X)  # below the incumbent at epoch 25, above it at T
    assert high[T // 2 - 1] < incumbent[-1] < high[-1]
    s = _state([incumbent, low, high], completed=[0])
    d_low = LCE().decide(low[:T // 2], T // 2, s)
    d_high = LCE().decide(high[:T // 2], T // 2, s)
    assert d_low.stop and d_low.prob < 0.05 and d_low.reference == incumbent[-1]
    assert not d_high.stop and d_high.prob > 0.5
    assert LCE().should_stop(low[:T // 2], T // 2, s)


def test_lce_never_stops_a_curve_already_above_the_incumbent():
    incumbent = np.full(T, 0.5)
    falling = np.linspace(0.7, 0.3, T)  # above 0.5 so far, heading below it
    d = LCE().decide(falling[:10], 10, _state([incumbent, falling], completed=[0]))
    assert not d.stop


def test_lce_warm_start_gives_the_decision_of_a_cold_call():
    rng = np.random.default_rng(0)
    y = EXACT["mmf"] + rng.normal(0, 0.01, T)
    s = _state([np.full(T, 0.8), y], completed=[0])
    warm = LCE().new_run()
    chain = [warm.decide(y[:e], e, s) for e in range(5, 21)]
    cold = LCE().new_run().decide(y[:20], 20, s)  # asked first at epoch 20
    assert chain[-1] == cold
    assert warm.decide(y[:20], 20, s) == cold  # asked twice: same answer
    skipped = LCE().new_run()
    skipped.decide(y[:7], 7, s)
    assert skipped.decide(y[:20], 20, s) == cold  # a gap in the calls changes nothing


def test_lce_fit_is_deterministic_and_needs_three_points():
    y = EXACT["pow3"][:10]
    a, b = fit_curves(y, T), fit_curves(y, T)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.weights, b.weights)
    with pytest.raises(ValueError, match="3 <= t <= T"):
        fit_curves(y[:2], T)
    with pytest.raises(ValueError, match="min_epochs"):
        LCE(min_epochs=2)
    with pytest.raises(ValueError, match="delta"):
        LCE(delta=1.5)


# ----- svr -------------------------------------------------------------------------------------
def _linear_family(n, seed):
    """Curves y_i(t) = f_i (1 - exp(-t / 4)) with f_i linear in two hyperparameters: every
    feature of epoch t is linear in f_i, and so is the target y_i(T)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0, 1, size=(n, 2))
    f = 0.3 + 0.4 * h[:, 0] + 0.2 * h[:, 1]
    curves = f[:, None] * (1.0 - np.exp(-np.arange(1, 21) / 4.0))[None, :]
    return curves, h


def test_svr_features_are_the_curve_its_differences_and_the_hyperparameters():
    f = svr_features(np.array([[0.1, 0.3, 0.6]]), np.array([[0.5, 0.25]]))
    np.testing.assert_allclose(f, [[0.1, 0.3, 0.6, 0.2, 0.3, 0.1, 0.5, 0.25]])


def test_svr_predicts_a_family_linear_in_its_features():
    curves, h = _linear_family(100, 0)
    train = np.arange(80)
    s = _state(curves, completed=train, features=h)
    rule = SVRRule()
    errors = [abs(_judge(rule, s, r, 5).predicted - curves[r, -1]) for r in range(80, 100)]
    assert np.mean(errors) < 0.02
    d = _judge(rule, s, 90, 5)
    assert d.reference == curves[train, -1].max() and 0 < d.std < 0.05


def test_svr_trains_only_on_completed_configs_and_refits_when_they_change():
    curves, h = _linear_family(30, 1)
    s = _state(curves, completed=range(12), features=h)
    rule = SVRRule().new_run()
    m1, _ = rule.model(5, s)
    assert rule.model(5, s)[0] is m1  # same completed set: the cached model
    assert m1.model.shape_fit_ == (12, 3 * 5 - 3 + 2)  # 12 completed configs, 14 features
    s.complete(12)
    m2, _ = rule.model(5, s)
    assert m2 is not m1 and m2.model.shape_fit_[0] == 13
    other = _state(curves, completed=range(1, 14), features=h)  # as many, not the same ones
    assert rule.model(5, other)[0] is not m2
    fewer = _state(curves, completed=range(9), features=h)
    assert SVRRule().decide(curves[20, :5], 5, fewer) == Decision(False)  # min_configs = 10


# ----- gp --------------------------------------------------------------------------------------
def test_gp_predicts_held_out_curves_and_knows_where_it_has_no_data():
    curves, h = _linear_family(100, 2)
    s = _state(curves, completed=range(80), features=h)
    rule = GPRule()
    errors = [abs(_judge(rule, s, r, 5).predicted - curves[r, -1]) for r in range(80, 100)]
    assert np.mean(errors) < 0.002
    near = _judge(rule, s, 90, 5)
    far = GPRule.predict(rule.model(5, s), np.array([[*(3.0 * curves[90, :5]), 5.0, 5.0]]))
    assert 0 < near.std < far[1]  # uncertain far from every completed config


def test_gp_stops_a_clearly_worse_curve_and_not_one_above_the_incumbent():
    curves, h = _linear_family(60, 3)
    top, worst = int(np.argmax(curves[:, -1])), int(np.argmin(curves[:, -1]))
    s = _state(curves, completed=[r for r in range(60) if r not in (top, worst)], features=h)
    best = float(s.acc[s.incumbent, -1])
    assert curves[worst, -1] < best - 0.1 and curves[top, -1] > best
    rule = GPRule().new_run()
    d = _judge(rule, s, worst, 4)
    assert d.stop and d.prob < 0.05 and d.reference == best
    d = _judge(rule, s, top, 4)
    assert not d.stop and d.prob > 0.5


def test_gp_refits_only_when_the_completed_configs_change_and_is_deterministic():
    curves, h = _linear_family(30, 4)
    s = _state(curves, completed=range(12), features=h)
    rule = GPRule().new_run()
    m1 = rule.model(5, s)
    assert rule.model(5, s) is m1 and m1.model.X_train_.shape == (12, 5 + 2)
    s.complete(12)
    assert rule.model(5, s) is not m1
    assert _judge(GPRule().new_run(), s, 20, 5) == _judge(rule, s, 20, 5)
    with pytest.raises(ValueError, match="GPRule.min_configs must be an integer >= 3"):
        GPRule(min_configs=2)


# ----- successive halving ----------------------------------------------------------------------
SH_CURVES = np.array([
    [0.50, 0.60, 0.70, 0.80, 0.90],
    [0.40, 0.50, 0.60, 0.70, 0.80],
    [0.60, 0.50, 0.60, 0.70, 0.80],
    [0.55, 0.65, 0.60, 0.85, 0.95],
    [0.30, 0.40, 0.50, 0.60, 0.70],
    [0.58, 0.62, 0.70, 0.75, 0.80],
])


class InOrder:
    """Proposes table rows 0, 1, 2, ... to be fully trained, one after the other."""

    def __init__(self, pool, rng):
        self.rows, self.T = sorted(pool.candidates.tolist()), pool.T

    def ask(self, pending=()):
        return Job(self.rows.pop(0), self.T) if self.rows else None

    def tell(self, job, accuracy, epochs):
        pass


def test_successive_halving_follows_the_hand_computed_promotion_schedule():
    # eta = 2, rungs at epochs 1, 2, 4; a config continues if in the top max(1, n // 2) of the
    # n configs that reached the rung (ties continue):
    # rung 1: c0 alone; c1 0.40 < 0.50 stop; c2 0.60 top 1 of 3; c3 0.55 ties 2nd of 4;
    #         c4 0.30 < 0.55 (top 2 of 5) stop; c5 0.58 in the top 3 of 6
    # rung 2: c2 0.50 < 0.60 (top 1 of 2) stop; c3 0.65 top 1 of 3; c5 0.62 ties 2nd of 4
    # rung 4: c3 0.85 > 0.80 (top 1 of 2); c5 0.75 < 0.85 (top 1 of 3) stop
    assert rungs(1, 2, 5) == [1, 2, 4] and rungs(2, 3, 20) == [2, 6, 18]
    t = make_table(6, 5, lambda i, e: SH_CURVES[i][e - 1])
    tr = replay(t, ReplayConfig(optimizer=InOrder, rules=("sh:eta=2",),
                                goal=Goal(accuracy=1.0)), 0).trace
    np.testing.assert_array_equal(tr["config_id"], np.arange(6))
    np.testing.assert_array_equal(tr["epochs"], [5, 1, 2, 5, 1, 4])
    np.testing.assert_array_equal(tr["stopped"], [False, True, True, False, True, True])
    assert parse_rule("asha:eta=2") == SuccessiveHalving(eta=2)
    with pytest.raises(ValueError, match="eta must be an integer >= 2"):
        SuccessiveHalving(eta=1)


# ----- every rule ------------------------------------------------------------------------------
def _noisy_curve(i, e):
    """Config i: rises to 0.3..0.9 at its own pace, with epoch noise of its own seed."""
    rng = np.random.default_rng(i)
    top = 0.3 + 0.6 * rng.uniform()
    return np.clip(top - (top - 0.1) * e ** -rng.uniform(0.3, 1.5)
                   + rng.normal(0, 0.02, len(e)), 0, 1)


@pytest.fixture(scope="module")
def table():
    return make_table(40, 12, _noisy_curve)


FIRST_EPOCH = {"etr1:tau=3,r=0.3": 3, "median:grace=2": 3, "lce:min_epochs=4": 4,
               "svr:min_epochs=4,min_configs=3": 4, "gp:min_epochs=4,min_configs=3": 4,
               "sh:min_r=2": 2}


@pytest.mark.parametrize("spec", sorted(FIRST_EPOCH))
def test_no_rule_stops_before_its_first_epoch(table, spec):
    tr = replay(table, ReplayConfig(optimizer="random", rules=(spec,),
                                    goal=Goal(accuracy=1.0)), 0).trace
    stopped = tr["epochs"][tr["stopped"]]
    assert stopped.size > 0  # the rule did stop configs, all at or after its first epoch
    assert stopped.min() >= FIRST_EPOCH[spec]


class Logged:
    """Records every decision of the rule it wraps as (row, epoch, stop, predicted, prob)."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def new_run(self):
        inner = self.inner.new_run() if hasattr(self.inner, "new_run") else self.inner
        return Logged(inner, self.log)

    def should_stop(self, curve, epoch, state):
        if hasattr(self.inner, "decide"):
            d = self.inner.decide(curve, epoch, state)
        else:
            d = Decision(bool(self.inner.should_stop(curve, epoch, state)))
        self.log.append((state.candidate, epoch, d.stop, d.predicted, d.prob))
        return d.stop


def _observation_times(table, trace):
    """Simulated time of every observed (row, epoch) of a one-worker run whose jobs train
    each row once, in trace order: accumulated as the replay's event heap does."""
    costs, times, start = epoch_costs(table), {}, 0.0
    for row, epochs, end in zip(trace["row"], trace["epochs"], trace["time"], strict=True):
        t = start
        for e in range(1, epochs + 1):
            t = t + costs[row, e - 1]
            times[row, e] = t
        assert t == end
        start = end
    return times


RULES = ["etr1:tau=2", "etr2:p=0.9", "median", "median:variant=synetune", "lce",
         "svr:min_configs=3", "gp:min_configs=3", "sh"]


def _before_and_after_perturbing(table, make_rule):
    """Replay, then perturb every accuracy observed after the run's median observation time
    tau (or never observed) and replay again: (decisions up to tau, the same after the
    perturbation, trace rows up to tau, the same after). make_rule(table) -> rule."""

    def run(t):
        log = []
        cfg = ReplayConfig(optimizer="random", rules=(Logged(make_rule(t), log),),
                           goal=Goal(accuracy=1.0))
        return replay(t, cfg, 3).trace, log

    trace, log = run(table)
    times = _observation_times(table, trace)
    order = sorted(times.values())
    tau = (order[len(order) // 2] + order[len(order) // 2 + 1]) / 2
    acc = np.array(table.acc)
    future = np.ones_like(acc, dtype=bool)
    for (row, e), t in times.items():
        future[row, e - 1] = t > tau
    acc[future] = np.random.default_rng(0).uniform(0, 1, size=future.sum())
    perturbed = make_table(len(acc), acc.shape[1], lambda i, e: acc[i, e - 1])
    np.testing.assert_array_equal(perturbed.acc[~future], table.acc[~future])
    trace2, log2 = run(perturbed)
    n = sum(1 for row, e, *_ in log if times[row, e] <= tau)
    k = int((trace["time"] <= tau).sum())
    rows = [tuple(tr[c][i] for c in ("row", "epochs", "stopped", "time")) for tr in (trace,)
            for i in range(k)]
    rows2 = [tuple(tr[c][i] for c in ("row", "epochs", "stopped", "time")) for tr in (trace2,)
             for i in range(min(k, len(trace2["row"])))]
    return log[:n], log2[:n], rows, rows2


@pytest.mark.parametrize("spec", RULES)
def test_no_rule_reads_the_future(table, spec):
    """Every decision made up to simulated time tau is the same when every accuracy observed
    after tau is changed."""
    from lcsim.hpo_sim.replay import resolve_rule

    before, after, rows, rows2 = _before_and_after_perturbing(table,
                                                              lambda t: resolve_rule(spec))
    assert len(before) > 20 and any(stop for _, _, stop, *_ in before)  # decisions that count
    assert after == before
    assert rows2 == rows


def test_the_future_check_catches_a_rule_that_peeks(table):
    class Peeking:  # stops a config whose final accuracy in the replayed table is low
        def __init__(self, replayed):
            self.replayed = replayed

        def should_stop(self, curve, epoch, state):
            return bool(epoch == 2 and self.replayed.acc[state.candidate, -1] < 0.5)

    before, after, _, _ = _before_and_after_perturbing(table, Peeking)
    assert after != before
