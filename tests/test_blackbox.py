"""The blackbox API over a table, and its export to Syne Tune (when the extra is installed)."""

import numpy as np
import pytest
from lcsim.tabular.blackbox import Blackbox
from lcsim.tabular.spaces import ConfigError
from lcsim.tabular.testing import make_table

T = 9


def _fn(i, e):
    rng = np.random.default_rng(i)
    final = 0.3 + 0.65 * rng.random()
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (0.5 + 3 * rng.random())))


@pytest.fixture(scope="module")
def table():
    return make_table(80, T, _fn, seconds=lambda i, e: 1.0 + (i % 4) + 0.5 * e,
                      status={3: "diverged", 4: "failed"})


def test_objective_by_id_and_by_hyperparameters(table):
    bb = Blackbox(table)
    got = bb(17, 5)
    r = table.row(17)
    seconds = (1.0 + 17 % 4 + 0.5 * np.arange(1, T + 1)) * 1.1  # solo + eval (0.1 x solo)
    assert got == {"config_id": 17, "epoch": 5, "val_accuracy": table.acc[r, 4],
                   "train_loss": table.train_loss[r, 4], "val_loss": table.val_loss[r, 4],
                   "cost": pytest.approx(seconds[4]), "elapsed": pytest.approx(seconds[:5].sum()),
                   "status": "complete", "trained": True}
    assert bb.objective(table.config(17), 5) == got
    assert bb(17)["epoch"] == T  # default: the last epoch
    measured = Blackbox(table, time="measured", charge_eval=False)(17, 5)
    assert measured["cost"] == pytest.approx(seconds[4] / 1.1)


def test_epochs_a_config_never_trained(table):
    bb = Blackbox(table)
    div = bb(3, T)  # diverged after T // 2 epochs
    assert np.isnan(div["val_accuracy"]) and div["cost"] == 0 and not div["trained"]
    assert div["elapsed"] == pytest.approx(bb(3, T // 2)["elapsed"])
    assert bb(3, T // 2)["trained"] and bb(3, 1)["status"] == "diverged"
    assert not bb(4, 1)["trained"]


def test_a_config_not_in_the_table_names_the_nearest(table):
    bb = Blackbox(table)
    cfg = dict(table.config(17))
    cfg["learning_rate"] *= 1.01
    with pytest.raises(ConfigError, match=r"is not in the table; the nearest table config is id "
                                          r"17 \(unit-cube distance 0\.00[0-9]+\)"):
        bb(cfg, 3)
    cfg["learning_rate"] = table.config(17)["learning_rate"] * (1 + 1e-12)  # a JSON round trip
    assert bb(cfg, 3)["config_id"] == 17
    with pytest.raises(ConfigError, match="is outside the allowed range"):
        bb({**cfg, "dropout": 2.0}, 3)
    with pytest.raises(ConfigError, match="neither a config id of this table"):
        bb(10_000, 1)
    with pytest.raises(ConfigError, match=r"epoch 0 is outside 1\.\.9"):
        bb(17, 0)


@pytest.fixture()
def syne_tune(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    return pytest.importorskip("syne_tune", reason="Syne Tune is an optional extra: "
                                                   "pip install 'lcsim[synetune]'")


def test_export_round_trips_through_syne_tunes_own_reader(table, tmp_path, syne_tune):
    from lcsim.tabular.blackbox import METRICS, export_syne_tune
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize

    export_syne_tune(table, tmp_path / "bb", task="digits")
    bb = deserialize(str(tmp_path / "bb"))["digits"]
    complete = np.flatnonzero(table.status == "complete")
    assert len(bb.hyperparameters) == len(complete) == 78
    assert bb.objectives_names == list(METRICS) and list(bb.fidelity_values) == list(range(1, 10))
    ours = Blackbox(table)
    for k in (0, 40, 77):
        cid = int(table.ids[complete[k]])
        cfg = bb.hyperparameters.iloc[k].to_dict()
        assert ours.config_id(cfg) == cid
        for e in (1, 5, 9):
            got = bb.objective_function(cfg, fidelity={"epoch": e}, seed=0)
            want = ours(cid, e)
            for m, w in zip(METRICS, ("val_accuracy", "val_loss", "train_loss", "cost",
                                      "elapsed"), strict=True):
                assert got[m] == pytest.approx(want[w], rel=1e-6)  # stored as float32


def test_syne_tune_asha_runs_on_an_exported_table(table, tmp_path, syne_tune):
    from lcsim.tabular.blackbox import export_syne_tune
    from sklearn.neighbors import KNeighborsRegressor
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend, add_surrogate
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize
    from syne_tune.experiments import load_experiment
    from syne_tune.optimizer.baselines import ASHA

    export_syne_tune(table, tmp_path / "bb")
    bb = add_surrogate(deserialize(str(tmp_path / "bb"))["lcsim"],
                       surrogate=KNeighborsRegressor(n_neighbors=1))  # the nearest table config
    scheduler = ASHA(bb.configuration_space, metric="val_accuracy", do_minimize=False,
                     time_attr="epoch", max_t=T, grace_period=1, reduction_factor=3,
                     random_seed=0)
    tuner = Tuner(trial_backend=UserBlackboxBackend(bb, elapsed_time_attr="elapsed_time"),
                  scheduler=scheduler, stop_criterion=StoppingCriterion(
                      max_num_trials_started=30), n_workers=2, sleep_time=0,
                  callbacks=[SimulatorCallback()], tuner_name="lcsim-asha", save_tuner=False,
                  wait_trial_completion_when_stopping=True,  # every trial ends at a rung
                  print_update_interval=1e9, results_update_interval=1e9)
    tuner.run()
    res = load_experiment(tuner.name).results
    deepest = res.groupby("trial_id")["epoch"].max()
    assert len(deepest) >= 29 and set(deepest) <= {1, 3, 9}  # ASHA's rungs: 1, 3, 9 epochs
    assert (deepest == 1).sum() > (deepest == 9).sum() >= 1
    # every reported curve is a table config's curve, at that config's cumulative seconds
    curves = table.acc.astype(np.float32)
    for _, trial in res.groupby("trial_id"):
        e = trial["epoch"].to_numpy()
        match = np.flatnonzero((np.abs(curves[:, e - 1] - trial["val_accuracy"].to_numpy())
                                < 1e-6).all(axis=1))
        assert match.size == 1
        np.testing.assert_allclose(trial["elapsed_time"], Blackbox(table).elapsed[match[0],
                                                                                   e - 1],
                                   rtol=1e-6)


def test_export_keeps_the_space_scales_log_integers_included(tmp_path, syne_tune):
    from lcsim.tabular.blackbox import export_syne_tune
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize
    from syne_tune.config_space import lograndint, loguniform, randint, uniform

    t = make_table(20, 3, lambda i, e: 0.1 + 0.01 * i + 0.1 * e, space="lcbench-mlp")
    export_syne_tune(t, tmp_path / "bb")
    cs = deserialize(str(tmp_path / "bb"))["lcsim"].configuration_space
    assert cs["batch_size"] == lograndint(16, 512) and cs["max_units"] == lograndint(64, 1024)
    assert cs["num_layers"] == randint(1, 5)
    assert cs["learning_rate"] == loguniform(1e-4, 1e-1) and cs["momentum"] == uniform(0.1, 0.99)
