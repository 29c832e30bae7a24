"""The replay loop: simulated clock, goal, budgets, workers, determinism, odd statuses."""

import numpy as np
import pytest
from lcsim.hpo_sim.replay import EventHeap, Goal, ReplayConfig, SimClock, epoch_costs, replay
from lcsim.tabular.testing import make_table

T = 5


def _fn(i, e):
    final = 0.2 + 0.75 * ((i * 13) % 40) / 40
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (1 + i % 3)))


def _seconds(i, e):  # every config and epoch costs something different
    return 1.0 + (i % 7) + 0.25 * e


@pytest.fixture(scope="module")
def table():
    return make_table(40, T, _fn, seconds=_seconds)


def _charged(t, tr, costs):
    return sum(costs[r, :e].sum() for r, e in zip(tr["row"], tr["epochs"], strict=True))


def test_clock_equals_sum_of_charged_epochs(table):
    cfg = ReplayConfig(optimizer="random", rules=("etr1:tau=1",), goal=Goal(accuracy=1.0))
    res = replay(table, cfg, 0)
    costs = table.solo_seconds + table.eval_seconds  # eval charged by default
    assert res.end_time == pytest.approx(_charged(table, res.trace, costs))
    assert np.all(np.diff(res.trace["time"]) > 0)
    # without eval seconds, and with measured (shared-device) seconds
    r2 = replay(table, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0),
                                    charge_eval=False), 0)
    assert r2.end_time == pytest.approx(_charged(table, r2.trace, table.solo_seconds))
    m = make_table(40, T, _fn, seconds=_seconds, concurrency=3)
    r3 = replay(m, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0), time="measured",
                                charge_eval=False), 0)
    assert r3.end_time == pytest.approx(3 * r2.end_time)


def test_run_ends_at_first_fully_trained_config_at_or_above_goal(table):
    goal = float(np.sort(table.acc[:, -1])[-5])  # five configs reach it
    res = replay(table, ReplayConfig(optimizer="random", goal=Goal(accuracy=goal)), 1)
    tr = res.trace
    final = table.acc[tr["row"], -1]
    assert res.reached
    assert final[-1] >= goal and tr["complete"][-1]
    assert np.all(final[:-1] < goal)  # nothing earlier reached it
    assert res.time_to_goal == tr["time"][-1] == res.end_time
    assert tr["best_so_far"][-1] == final[-1]


def test_stopped_config_at_goal_level_does_not_end_the_run():
    # config 0 would reach the goal but is flat-below-threshold at epoch 1 (ETR-1 stops it)
    def fn(i, e):
        if i == 0:
            return np.where(e == 1, 0.1, 0.99)
        return np.full(T, 0.5 + i / 100)
    t = make_table(10, T, fn)
    cfg = ReplayConfig(optimizer="random", rules=("etr1:tau=1",), goal=Goal(accuracy=0.95))
    res = replay(t, cfg, 0)
    assert not res.reached and res.time_to_goal == np.inf
    assert len(res.trace["row"]) == 10
    assert res.trace["stopped"][list(res.trace["row"]).index(0)]


def test_time_and_evaluation_budgets(table):
    res = replay(table, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0),
                                     max_evals=7), 0)
    assert len(res.trace["row"]) == 7 and not res.reached
    res = replay(table, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0),
                                     max_time=100.0), 0)
    assert res.end_time == 100.0 and res.trace["time"].max() <= 100.0


def test_diverged_config_stops_at_n_recorded_and_failed_are_never_proposed():
    st = {0: "diverged", 1: "failed", 2: ("diverged", 3)}
    t = make_table(12, T, lambda i, e: np.full(T, 0.5 + i / 100), status=st)
    res = replay(t, ReplayConfig(optimizer="random", goal=Goal(accuracy=1.0)), 0)
    tr = res.trace
    rows = list(tr["row"])
    assert 1 not in rows and len(rows) == 11
    for r, e in ((0, T // 2), (2, 3)):
        k = rows.index(r)
        assert tr["epochs"][k] == e and tr["diverged"][k] and not tr["complete"][k]
    costs = epoch_costs(t)
    assert res.end_time == pytest.approx(_charged(t, tr, costs))


def test_event_heap_orders_by_time_then_insertion():
    h = EventHeap()
    for time, item in [(2.0, "a"), (1.0, "b"), (2.0, "c"), (1.0, "d"), (0.5, "e")]:
        h.push(time, item)
    assert [h.pop() for _ in range(len(h))] == [
        (0.5, "e"), (1.0, "b"), (1.0, "d"), (2.0, "a"), (2.0, "c")]


def test_clock_never_moves_backwards():
    c = SimClock()
    c.advance_to(3.0)
    with pytest.raises(AssertionError):
        c.advance_to(2.0)


@pytest.mark.parametrize("optimizer", ["random", "hyperband"])
def test_multi_worker_replay_is_deterministic_and_ordered(table, optimizer):
    cfg = ReplayConfig(optimizer=optimizer, rules=("median",), goal=Goal(accuracy=1.0),
                       workers=3)
    a, b = replay(table, cfg, 5), replay(table, cfg, 5)
    for k in a.trace:
        np.testing.assert_array_equal(a.trace[k], b.trace[k])
    tr = a.trace
    assert np.all(np.diff(tr["time"]) >= 0)  # jobs end in simulated-time order
    assert set(tr["worker"]) == {0, 1, 2}
    costs = epoch_costs(table)
    # each worker is busy one job at a time: its jobs' charged seconds add up to its last end
    busy = {w: 0.0 for w in range(3)}
    prev = {r: 0 for r in tr["row"]}
    for w, r, e, end in zip(tr["worker"], tr["row"], tr["epochs"], tr["time"], strict=True):
        busy[w] += costs[r, prev[r]:e].sum()
        prev[r] = e
        assert busy[w] <= end + 1e-9
    if optimizer == "random":  # never idle; synchronous Hyperband waits for its rungs
        assert max(busy.values()) == pytest.approx(a.end_time)
    one = replay(table, ReplayConfig(optimizer=optimizer, rules=("median",),
                                     goal=Goal(accuracy=1.0)), 5)
    assert a.end_time < one.end_time  # three workers finish the same candidates sooner


def test_goal_parsing_and_validation():
    assert Goal.parse("top:0.5") == Goal(top_percent=0.5)
    assert Goal.parse("0.99") == Goal(accuracy=0.99)
    with pytest.raises(ValueError, match="bad goal 'best'"):
        Goal.parse("best")
    with pytest.raises(ValueError, match="exactly one"):
        Goal()
    with pytest.raises(ValueError, match="unknown optimizer 'tpe'"):
        ReplayConfig(optimizer="tpe")
    with pytest.raises(ValueError, match="unknown stopping rule"):
        ReplayConfig(rules=("etr9",))
    with pytest.raises(ValueError, match=r"has no option\(s\) \['trees'\]"):
        ReplayConfig(optimizer="smac", optimizer_options={"trees": 10})


@pytest.mark.parametrize("kw", [
    {}, {"rules": ("etr1:tau=2",)}, {"rules": ("etr1:tau=1", "etr1:tau=3,eps=0.4")},
    {"max_evals": 9}, {"max_time": 60.0}, {"goal": Goal(top_percent=10)},
])
def test_numpy_random_search_equals_the_event_loop(kw):
    from lcsim.hpo_sim.replay.fast import eligible, random_search_runs

    st = {0: "diverged", 1: "failed", 5: ("diverged", 1), 9: ("diverged", 2)}
    t = make_table(40, T, _fn, seconds=_seconds, status=st)
    cfg = ReplayConfig(optimizer="random", **{"goal": Goal(top_percent=3), **kw})
    assert eligible(cfg)
    seeds = np.random.SeedSequence(3).spawn(5)
    for seed, fast in zip(seeds, random_search_runs(t, cfg, seeds), strict=True):
        ref = replay(t, cfg, seed)
        assert (fast.time_to_goal, fast.end_time, fast.reached) == (
            ref.time_to_goal, ref.end_time, ref.reached)
        for k in ref.trace:
            np.testing.assert_array_equal(fast.trace[k], ref.trace[k], err_msg=k)
    assert not eligible(ReplayConfig(optimizer="random", rules=("median",)))
    assert not eligible(ReplayConfig(optimizer="random", workers=2))
