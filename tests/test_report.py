"""`lcsim report` and the result loaders: a table and a small study become PNGs + index.html."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lcsim.analysis.report import render_report
from lcsim.analysis.results import LiveResults, load_alrs, load_epbt, load_esgd, load_replay
from lcsim.hpo_sim.replay.audit import calibration_frame
from lcsim.hpo_sim.replay.simulate import Goal, ReplayConfig
from lcsim.hpo_sim.replay.study import (
    audit_frame,
    run_settings,
    summarize,
    with_baselines,
    write_outputs,
)
from lcsim.tabular.table import LookupTable
from lcsim.tabular.testing import write_table

from lcsim.cli import main as lcsim


def _acc(i: int, e: np.ndarray) -> np.ndarray:
    final = 0.1 + 0.85 * ((7 * i) % 40) / 39
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (1 + i % 3)))


def _seconds(i: int, e: np.ndarray) -> np.ndarray:
    return np.full(len(e), 30.0 + 10 * (i % 5))


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("table") / "t", 40, 6, _acc, per_shard=20,
                       seconds=_seconds, status={3: "diverged"})


@pytest.fixture(scope="module")
def replay_dir(table_dir, tmp_path_factory) -> Path:
    """A small study: random search with no rule / ETR-1 / ETR-2 / lce, SMAC without rules."""
    table = LookupTable.open(table_dir)
    smac_opts = {"n_trees": 10, "n_init": 3}  # small forest: the test checks files, not SMAC
    settings = with_baselines(
        [ReplayConfig(optimizer="random", rules=r, goal=g)
         for r in (("etr1:tau=2",), ("etr2:p=0.9",), ("lce:min_epochs=3",))
         for g in (Goal(top_percent=5), Goal(top_percent=20))]
        + [ReplayConfig(optimizer="smac", goal=g, optimizer_options=smac_opts)
           for g in (Goal(top_percent=5), Goal(top_percent=20))])
    results = run_settings(table, settings, 3, 0, progress=False)
    out = tmp_path_factory.mktemp("study")
    write_outputs(out, settings, results, summarize(settings, results, n_boot=50),
                  audit_frame(table, settings, results), {"test": True},
                  calibration_frame(table, settings, results))
    return out


def test_load_replay_runs_match_summary(replay_dir):
    res = load_replay(replay_dir)
    assert len(res.runs) == len(res.summary) * 3
    assert len(set(res.traces["rules"])) == 4  # none, ETR-1, ETR-2, lce
    cal = res.calibration  # lce's reliability bins
    assert set(cal["rules"]) == {"lce:min_epochs=3"} and (cal["n"] > 0).all()
    assert set(res.traces["rules"]) == set(res.summary["rules"])  # labels as in summary.csv
    med = res.runs.groupby(["optimizer", "rules", "goal"])["time_to_goal"].median()
    for _, row in res.summary.iterrows():
        assert med[(row["optimizer"], row["rules"], row["goal"])] == pytest.approx(
            row["median_s"])
    rate = res.runs.groupby(["optimizer", "rules", "goal"])["reached"].mean()
    assert rate.to_numpy() == pytest.approx(
        res.summary.set_index(["optimizer", "rules", "goal"]).loc[rate.index,
                                                                  "success_rate"].to_numpy())


def test_load_replay_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_replay(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"traces.*\*\.parquet"):
        load_replay(tmp_path)


def _esgd_dir(root: Path) -> Path:
    """ESGD output layout (hpo_sim.live.esgd.cli) with records in esgd.run's columns."""
    for method in ("esgd", "population", "single"):
        rows = []
        n = 1 if method == "single" else 6
        for g in range(3):
            for j in range(n):
                rows.append(dict(method=method, generation=g, individual=j, slot=j,
                                 offspring=False, parents=[], optimizer="sgd", lr=0.1,
                                 momentum=0.9, fitness_start=2.0, fitness=2.0 - 0.3 * g + j / 50,
                                 backoffs=0, elite=j < 4, selected=True))
            if method == "esgd" and g > 0:
                rows += [dict(method=method, generation=g, individual=100 + j, slot=-1,
                              offspring=True, parents=[0, 1], optimizer="", lr=np.nan,
                              momentum=np.nan, fitness_start=np.nan, fitness=1.9 - 0.3 * g,
                              backoffs=0, elite=j < g, selected=j < g) for j in range(4)]
        (root / method).mkdir(parents=True)
        pd.DataFrame(rows).to_parquet(root / method / "records.parquet")
    pd.DataFrame({"method": ["esgd"], "best_fitness": [1.0]}).to_csv(root / "summary.csv",
                                                                     index=False)
    return root


def _epbt_dir(root: Path) -> Path:
    """EPBT output layout (hpo_sim.live.epbt.cli) with records in epbt.run's columns."""
    for method in ("epbt", "baseline"):
        for seed in (0, 1):
            rows = []
            for g in range(3):
                for i in range(1 if method == "baseline" else 4):
                    row = dict(method=method, seed=seed, generation=g, epoch=g + 1,
                               individual=4 * g + i, parent=4 * (g - 1) + i if g else -1,
                               partner=-1, role="child", fitness=0.8 + 0.05 * g - 0.01 * i,
                               test_accuracy=0.79 + 0.05 * g, train_loss=0.5, lr=0.1 / (g + 1),
                               trained_epochs=g + 1, diverged=False)
                    if method == "epbt":
                        row |= {f"h_theta_{j}": float(j - g) for j in range(8)}
                        row |= {"h_lr_scale": 1.0, "h_lr_decay": 0.2, "h_momentum": 0.9}
                    rows.append(row)
            d = root / f"{method}-seed{seed}"
            d.mkdir(parents=True)
            rec = pd.DataFrame(rows)
            rec.to_parquet(d / "records.parquet")
            rec[rec.individual % 4 == 0].to_parquet(d / "lineage.parquet")
    return root


def _alrs_dir(root: Path) -> Path:
    """lcsim.hpo_sim.live.alrs.compare output layout: runs / seed_study / summary Parquet files."""
    root.mkdir(parents=True)
    runs = pd.DataFrame([dict(experiment="e", dataset="mnist", optimizer="adam", method=m,
                              seed=s, lr=lr, final_loss=0.5, status="complete",
                              curve=[2.0 / (b + s) for b in range(1, 11)])
                         for m, lr in (("alrs", 0.01), ("standard", 0.001), ("x10", 0.01))
                         for s in range(2)])
    runs.to_parquet(root / "runs.parquet")
    pd.DataFrame([dict(experiment="e", optimizer="adam", method="seed_study", seed=s,
                       lr_seed=l0, lr=0.01 + 0.001 * s) for l0 in (0.001, 1.0) for s in (0, 1)]
                 ).to_parquet(root / "seed_study.parquet")
    pd.DataFrame({"method": ["alrs"], "loss_mean": [0.5]}).to_parquet(root / "summary.parquet")
    return root


EXPECTED_TABLE = {"table_learning_curves.png", "table_hyperparameters.png"}


def _replay_pngs(name: str) -> set[str]:
    return {f"replay_{name}_time_to_goal_random.png", f"replay_{name}_time_to_goal_smac.png",
            f"replay_{name}_best_so_far.png", f"replay_{name}_speedup_vs_stops.png",
            f"replay_{name}_calibration.png"}


def _check_pngs(out: Path, names: set[str]) -> None:
    for n in names:
        f = out / n
        assert f.exists(), f"{n} was not written"
        assert f.stat().st_size > 1000 and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    linked = set(re.findall(r'<img src="([^"]+)"', page))
    assert linked == {p.name for p in out.glob("*.png")}  # every PNG linked, relatively


def test_render_report_writes_every_figure(table_dir, replay_dir, tmp_path):
    alrs = load_alrs(_alrs_dir(tmp_path / "alrs"))
    esgd = load_esgd(_esgd_dir(tmp_path / "esgd"))
    epbt = load_epbt(_epbt_dir(tmp_path / "epbt"))
    assert set(epbt.lineages) == {"epbt seed 0", "epbt seed 1", "baseline seed 0",
                                  "baseline seed 1"}
    out = tmp_path / "report"
    done = render_report(out, table=LookupTable.open(table_dir),
                         replays=[load_replay(replay_dir)], alrs=alrs, esgd=esgd,
                         epbt=epbt, dpi=60)
    expected = (EXPECTED_TABLE | _replay_pngs(replay_dir.name)
                | {"alrs_loss_curves.png", "alrs_seeds.png", "esgd_fitness.png",
                   "esgd_offspring.png", "epbt_test_accuracy.png",
                   "epbt_best_hyperparameters.png", "epbt_loss_shapes.png"})
    assert set(done["written"]) == expected and done["skipped"] == []
    _check_pngs(out, expected)
    # `lcsim report --force` removes exactly these: every file written matches OUTPUTS
    from fnmatch import fnmatch

    from lcsim.analysis.report import OUTPUTS

    assert all(any(fnmatch(f.name, pat) for pat in OUTPUTS) for f in out.iterdir())
    page = (out / "index.html").read_text()
    assert "Summary per setting" in page and "<table" in page
    assert "Rule audit" in page and "variation %" in page  # ALRS seed table


def test_report_skips_figure_whose_input_lacks_data(tmp_path):
    runs = pd.DataFrame({"optimizer": ["adam"], "method": ["alrs"], "seed": [0], "lr": [0.1]})
    done = render_report(tmp_path, alrs=LiveResults(tmp_path, runs))
    assert done["written"] == []
    assert done["skipped"] == ["alrs_loss_curves.png: alrs_curves: missing column(s) "
                               "['curve']; the frame has ['optimizer', 'method', 'seed', 'lr']"]
    assert "Skipped alrs_loss_curves.png" in (tmp_path / "index.html").read_text()


def test_render_report_needs_an_input(tmp_path):
    with pytest.raises(ValueError, match="nothing to report"):
        render_report(tmp_path)


def test_cli_report(table_dir, replay_dir, tmp_path, capsys):
    out = tmp_path / "r"
    rc = lcsim(["report", "--table", str(table_dir), "--replay", str(replay_dir),
                "--out", str(out), "--dpi", "60"])
    assert rc == 0
    _check_pngs(out, EXPECTED_TABLE | _replay_pngs(replay_dir.name))
    assert "wrote 7 figures" in capsys.readouterr().out


def test_cli_report_bad_directory_is_a_clear_error(tmp_path, capsys):
    rc = lcsim(["report", "--esgd", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert f"ESGD results: {tmp_path / 'missing'} is not a directory" in capsys.readouterr().err


def test_cli_report_out_of_other_inputs_needs_force(table_dir, tmp_path, capsys):
    # which files --force removes is checked by the OUTPUTS contract above and in
    # test_cliargs; here: the refusal and that the user's own files stay
    out = tmp_path / "r"
    base = ["report", "--table", str(table_dir), "--out", str(out)]
    assert lcsim([*base, "--dpi", "30"]) == 0
    (out / "my-notes.png").write_bytes(b"mine")
    assert lcsim([*base, "--dpi", "31"]) == 2
    err = capsys.readouterr().err
    assert f"lcsim report: error: --out {out} holds results of other settings (dpi: 30 -> 31)" \
        in err and "table_learning_curves.png" in err and "--force" in err
    assert lcsim([*base, "--dpi", "31", "--force"]) == 0
    assert {p.name for p in out.glob("*.png")} == EXPECTED_TABLE | {"my-notes.png"}


def test_cli_report_without_inputs(tmp_path, capsys):
    assert lcsim(["report", "--out", str(tmp_path / "r")]) == 2
    assert "lcsim report: error: nothing to report" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_from_shipped_table(replay_dir, tmp_path):
    from lcsim.tabular.table import shipped_tables

    if not shipped_tables():
        pytest.skip("no table is shipped in tabular/data yet")
    table = LookupTable.open("default")
    done = render_report(tmp_path, table=table, replays=[load_replay(replay_dir)], dpi=60)
    assert set(done["written"]) == EXPECTED_TABLE | _replay_pngs(replay_dir.name)
    _check_pngs(tmp_path, EXPECTED_TABLE)
