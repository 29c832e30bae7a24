"""Seconds per SMAC iteration on a 20,000-config table: lcsim vs the bare forest floor vs the
stock smac facade, side by side in one run; plus the wall time of the choi-fig4 + choi-fig5
study on the same table, measured on a fraction of its repeats and extrapolated.

    OMP_NUM_THREADS=1 python benchmarks/replay_speed.py [--configs 20000] [--epochs 20]
        [--histories 50,100,200] [--study-repeats 1] [--jobs 1]

- lcsim: `SMAC.ask()` with a history of h told configs: refit smac's RandomForest (50 trees,
  n_jobs=1) and score EI on every remaining candidate (20,000 - h rows).
- floor: the same 50-tree fit on the same history plus per-tree predictions of every
  remaining candidate, nothing else; both smac's EPMRandomForest bare (random splitter, what
  lcsim uses) and sklearn's RandomForestRegressor (best splitter) are shown.
- stock facade: smac.HyperparameterOptimizationFacade (get_model(n_trees=50), its defaults
  otherwise: Sobol initial design, LocalAndSortedRandomSearch, refit every 8 asks), over the
  same unit-cube space, costs from the nearest table config; seconds per ask averaged over
  `--facade-asks` asks once past its initial design (history ~ n_init).

Measured 2026-11-23 on the shared 2-core CPU box (other jobs running, load avg 3-6, so CPU
time is the stable number), `OMP_NUM_THREADS=1 python benchmarks/replay_speed.py --reps 7
--study-repeats 2`:
  CPU s/iteration at h = 50/100/200: lcsim 0.059/0.072/0.085; floor (smac forest bare)
  0.054/0.065/0.082 -> lcsim/floor 1.09x/1.11x/1.03x (sklearn's forest: 0.054/0.066/0.079).
  Stock facade, h ~ 100: 0.78 s CPU (1.95 s wall) per ask -> lcsim 10.9x faster per
  iteration; the same facade with n_jobs=1 and max_leaf_nodes=None: 0.167 s CPU per ask.
  choi-fig4 + choi-fig5 (20 settings, 40 runs, 1,016 SMAC iterations): 21.7 s CPU ->
  1,000 runs ~9.1 CPU-min, ~4.5 min with --jobs 2 on two idle cores (extrapolated).

`--loop-repeats N` also times the replay loop per epoch event (random search with the median
rule and ETR-2 on 1 and 4 workers, goal out of reach, 500 configs per run). Open protocols
(issue 14: rules see only observed epochs, spec resolution), this script run alternately on
main (71b727e) and on the change, 3 runs each, `--reps 5 --study-repeats 1 --loop-repeats 3`,
medians, load avg ~5: SMAC s/iteration new/old 1.00 / 1.00 / 1.00 at h = 50 / 100 / 200
(lcsim/floor 1.08x / 1.08x / 1.05x both); loop us/event median 15.8 vs 16.6 (1 worker),
15.3 vs 15.8 (4), ETR-2 6.4 vs 6.8 (1), 5.7 vs 5.9 (4); choi-fig4 + fig5 study CPU 9.7 vs
9.4 s (1.03x, within the runs' spread 9.3-10.1 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def synthetic_table(n: int, T: int, seed: int = 0):
    """Curves shaped like Choi et al.'s MNIST table: ~15% untrainable (flat at 0.1), the rest
    rising at config-dependent speeds to a final accuracy that is a smooth function of three
    hyperparameters plus a little config noise; seconds grow with two size parameters."""
    from lcsim.tabular.spaces import get_space
    from lcsim.tabular.testing import make_table

    sp = get_space("mnist")
    x = sp.to_unit(sp.configs(0, n, seed))
    rng = np.random.default_rng(seed)
    final = 0.1 + 0.89 * (x[:, 6] * (1 - 0.6 * (x[:, 7] - 0.3) ** 2) * (0.7 + 0.3 * x[:, 2]))
    final = np.clip(final + rng.normal(0, 0.01, n), 0.1, 0.995)
    dead = x[:, 6] > 0.9  # e.g. a learning rate too high to train
    speed = 0.5 + 3 * x[:, 8]
    secs = 2.0 + 6.0 * x[:, 0] + 4.0 * x[:, 1]

    def fn(i, e):
        if dead[i]:
            return np.full(len(e), 0.1)
        return 0.1 + (final[i] - 0.1) * (1 - np.exp(-e / speed[i]))

    return make_table(n, T, fn, seconds=lambda i, e: np.full(len(e), secs[i]), seed=seed)


def _told_smac(table, h: int, seed: int):
    from lcsim.hpo_sim.replay import SMAC, candidate_rows

    rng = np.random.default_rng(seed)
    opt = SMAC(table.features, candidate_rows(table), table.epochs, rng, n_init=h,
               random_prob=0.0, names=table.space.names)
    for _ in range(h):
        job = opt.ask()
        opt.tell(job, float(table.acc[job.row, -1]), table.epochs)
    return opt


def time_iteration(table, h: int, reps: int, clock=time.process_time) -> tuple[float, ...]:
    """Median seconds of one iteration for (lcsim, floor smac forest, floor sklearn forest),
    the three interleaved rep by rep so load changes hit them alike."""
    from sklearn.ensemble import RandomForestRegressor
    from smac.model.random_forest.random_forest import EPMRandomForest

    opt = _told_smac(table, h, 0)
    opt.n_init = 0
    X = opt._X[opt._rows]
    y = 1.0 - np.asarray(table.acc[opt._rows, -1])
    cand = opt._X[np.flatnonzero(opt._free)]
    out: list[list[float]] = [[], [], []]
    for r in range(reps):
        t0 = clock()
        row = opt._best_ei_row()  # fit + EI on every remaining candidate; history stays at h
        out[0].append(clock() - t0)
        assert 0 <= row < len(table)
        t0 = clock()
        f = EPMRandomForest(n_estimators=50, splitter="random", min_samples_split=2,
                            min_samples_leaf=1, max_features=X.shape[1], bootstrap=True,
                            n_jobs=1, random_state=r)
        f.fit(X, y)
        pred = np.stack([t.predict(cand, check_input=False) for t in f.estimators_], axis=1)
        pred.mean(axis=1), pred.var(axis=1)
        out[1].append(clock() - t0)
        t0 = clock()
        g = RandomForestRegressor(n_estimators=50, max_features=1.0, n_jobs=1, random_state=r)
        g.fit(X, y)
        pred = np.stack([t.predict(cand, check_input=False) for t in g.estimators_], axis=1)
        pred.mean(axis=1), pred.var(axis=1)
        out[2].append(clock() - t0)
    return tuple(float(np.median(o)) for o in out)


def time_facade(table, n_init: int, asks: int, tuned: bool = False) -> tuple[float, float]:
    """Seconds (wall, CPU) per ask of the stock facade; tuned=True gives its forest lcsim's
    two speed settings (n_jobs=1, max_leaf_nodes=None) to show what the rest costs."""
    from ConfigSpace import Configuration
    from lcsim.hpo_sim.replay.optimizers import unit_cube_space
    from smac import HyperparameterOptimizationFacade as HPO
    from smac import Scenario
    from smac.runhistory import TrialValue

    cs = unit_cube_space(table.space.names, seed=0)
    feats = table.features
    final = np.nan_to_num(table.acc[:, -1], nan=0.0)
    with tempfile.TemporaryDirectory() as d:
        sc = Scenario(cs, deterministic=True, n_trials=10 * (n_init + asks), seed=0,
                      output_directory=os.path.join(d, "smac"))
        init = HPO.get_initial_design(sc, n_configs=n_init)
        model = HPO.get_model(sc, n_trees=50)
        if tuned:
            from smac.model.random_forest import RandomForest

            model = RandomForest(cs, log_y=True, n_trees=50, ratio_features=1.0,
                                 min_samples_split=2, min_samples_leaf=1, n_jobs=1,
                                 max_leaf_nodes=None, seed=0)
        smac = HPO(sc, lambda config, seed=0: 0.0, model=model, initial_design=init,
                   overwrite=True, logging_level=40)

        def cost(info) -> float:
            v = np.array([info.config[n] for n in table.space.names])
            return float(1.0 - final[int(np.argmin(((feats - v) ** 2).sum(axis=1)))])

        for _ in range(n_init):
            info = smac.ask()
            smac.tell(info, TrialValue(cost=cost(info)))
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(asks):
            info = smac.ask()
            assert isinstance(info.config, Configuration)
            smac.tell(info, TrialValue(cost=cost(info)))
        return (time.perf_counter() - t0) / asks, (time.process_time() - c0) / asks


def time_study(table, repeats: int, jobs: int) -> tuple[float, float, int, int]:
    from lcsim.hpo_sim.replay import load_preset, preset_settings, run_settings

    settings = []
    for name in ("choi-fig4", "choi-fig5"):
        for c in preset_settings(load_preset(name)):
            if c not in settings:
                settings.append(c)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_settings(table, settings, repeats, 0, jobs=jobs, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    iters = int(sum(len(r.trace["row"]) for rs in res for r in rs))
    return wall, cpu, len(settings), iters


def per_iteration(table, args) -> None:
    print("\nseconds per SMAC iteration (CPU time of this process, median of "
          f"{args.reps} interleaved reps; {args.configs:,} - h candidates scored)")
    print(f"{'history h':>9} {'lcsim':>8} {'floor smac-rf':>14} {'floor sklearn-rf':>17} "
          f"{'lcsim/floor':>12}")
    lc = {}
    for h in (int(x) for x in args.histories.split(",")):
        a, f_smac, f_sk = time_iteration(table, h, args.reps)
        lc[h] = a
        print(f"{h:>9} {a:>8.3f} {f_smac:>14.3f} {f_sk:>17.3f} {a / f_smac:>11.2f}x")
    n_init = 100
    fac_wall, fac_cpu = time_facade(table, n_init, args.facade_asks)
    ref = lc.get(n_init) or lc[min(lc, key=lambda k: abs(k - n_init))]
    print(f"\nstock HPO facade (50 trees), history ~{n_init}: {fac_cpu:.3f} s CPU "
          f"({fac_wall:.3f} s wall) per ask, mean of {args.facade_asks} asks (it refits every 8);"
          f" lcsim is {fac_cpu / ref:.1f}x faster per iteration (CPU)")
    tw, tc = time_facade(table, n_init, args.facade_asks, tuned=True)
    print(f"  same facade with n_jobs=1, max_leaf_nodes=None in its forest: {tc:.3f} s CPU "
          f"({tw:.3f} s wall) per ask; the rest is its local search + bookkeeping")


def time_loop(table, repeats: int) -> list[tuple[str, float, int]]:
    """CPU seconds per epoch event of the replay loop itself: random search with stateful
    rules (median, ETR-2) on 1 and 4 workers, where no optimizer model hides the loop's cost;
    one row per setting as (label, seconds per event, events)."""
    from lcsim.hpo_sim.replay import Goal, ReplayConfig, replay

    out = []
    for rules in (("median",), ("etr2:p=0.9",)):
        for workers in (1, 4):
            # goal out of reach, 500 configs per run: the per-run setup is a small share
            cfg = ReplayConfig(optimizer="random", rules=rules, goal=Goal(accuracy=1.0),
                               workers=workers, max_evals=500)
            events, c0 = 0, time.process_time()
            for seed in range(repeats):
                tr = replay(table, cfg, seed).trace
                events += int(np.sum(tr["epochs"]))
            out.append((f"random + {rules[0]}, {workers} worker(s)",
                        (time.process_time() - c0) / events, events))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--histories", default="50,100,200")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--facade-asks", type=int, default=16)
    ap.add_argument("--study-repeats", type=int, default=1,
                    help="repeats of each study setting to time (the presets use 50)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--study-only", action="store_true", help="skip the per-iteration timings")
    ap.add_argument("--loop-repeats", type=int, default=0,
                    help="also time the replay loop per epoch event over this many runs each")
    args = ap.parse_args()

    t0 = time.perf_counter()
    table = synthetic_table(args.configs, args.epochs)
    print(f"table: {table!r} built in {time.perf_counter() - t0:.1f} s; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load avg "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.study_only:
        per_iteration(table, args)
    if args.loop_repeats:
        print(f"\nreplay loop, CPU microseconds per epoch event ({args.loop_repeats} runs each)")
        for label, sec, events in time_loop(table, args.loop_repeats):
            print(f"  {label:<32} {sec * 1e6:8.2f} us  ({events} events)")

    wall, cpu, n_set, iters = time_study(table, args.study_repeats, args.jobs)
    runs = n_set * args.study_repeats
    print(f"\nchoi-fig4 + choi-fig5: {n_set} settings x {args.study_repeats} repeat(s) = {runs} "
          f"runs ({iters} SMAC iterations) in {wall:.1f} s wall, {args.jobs} job(s)")
    print(f"  extrapolated to the presets' 50 repeats ({n_set * 50} runs): "
          f"{wall / runs * n_set * 50 / 60:.1f} min wall at this load")
    if args.jobs == 1:
        print(f"  CPU {cpu:.1f} s -> {cpu / runs * n_set * 50 / 60:.1f} CPU-min; on 2 idle cores "
              f"(--jobs 2): ~{cpu / runs * n_set * 50 / 120:.1f} min")


if __name__ == "__main__":
    main()
