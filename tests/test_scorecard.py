"""The scorecard: each claim's verdict computed from tables and result folders built to satisfy
it and others built to refute it; missing inputs named; `lcsim scorecard` and the report page."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from lcsim.analysis.results import load_esgd, load_replay
from lcsim.analysis.scorecard import format_scorecard, scorecard
from lcsim.hpo_sim.live.esgd.summary import generations, summarize
from lcsim.hpo_sim.replay import claims
from lcsim.hpo_sim.replay.simulate import Goal, ReplayConfig
from lcsim.hpo_sim.replay.study import (
    audit_frame,
    run_settings,
    with_baselines,
    write_outputs,
)
from lcsim.hpo_sim.replay.study import (
    summarize as study_summary,
)
from lcsim.tabular.table import LookupTable
from lcsim.tabular.testing import make_frames, make_table, write_table

from lcsim.cli import main

T = 10


def _table(fn, n=40, dataset="mnist", **kw) -> LookupTable:
    c, u, m = make_frames(n, T, fn, **kw)
    return LookupTable.from_frames(c, u, {**m, "dataset": dataset, "num_classes": 10})


def _fast(i, e):  # half learn within one epoch to their plateau, half stay at chance
    if i % 2:
        return np.full(len(e), 0.1)
    return np.full(len(e), 0.5 + 0.4 * i / 40)


def _slow(i, e):  # every config learns, slowly and linearly up to its final accuracy
    return 0.2 + (0.3 + 0.5 * i / 40) * e / T


# ----- definitions -----------------------------------------------------------------------------
def test_convergence_epoch_is_where_a_curve_stays_within_delta_of_its_end():
    acc = np.array([[0.1, 0.5, 0.9, 0.9, 0.9],   # settled at 3
                    [0.9, 0.9, 0.9, 0.9, 0.9],   # flat: 1
                    [0.9, 0.5, 0.9, 0.9, 0.905],  # a dip at 2, within delta after: 3
                    [0.1, 0.2, 0.3, 0.4, 0.5]])  # rising to the end: T
    assert claims.convergence_epochs(acc, 0.01).tolist() == [3, 1, 3, 5]


# ----- table claims: each built to hold and to be refuted --------------------------------------
@pytest.mark.parametrize("fn,holds", [(_fast, True), (_slow, False)])
def test_bottom_configs_near_chance(fn, holds):
    c = claims.bottom_near_chance(_table(fn), k=10)
    assert c.holds is holds
    assert c.value == (1.0 if holds else 0.0)
    assert c.inputs["threshold"] == pytest.approx(0.15)  # 1/10 + 0.05, shown in the output


@pytest.mark.parametrize("fn,holds", [(_fast, True), (_slow, False)])
def test_top_configs_converge_early_on_mnist(fn, holds):
    c = claims.top_converge_early(_table(fn), k=10)
    assert c.holds is holds and c.missing == ""


def test_top_configs_converge_is_an_mnist_claim():
    c = claims.top_converge_early(_table(_fast, dataset="digits"), k=10)
    assert c.holds is None and c.value == 1.0  # our value shown, no verdict
    assert "an MNIST table" in c.missing and "dataset is digits" in c.missing


@pytest.mark.parametrize("fn,holds", [(_fast, True), (_slow, False)])
def test_curves_plateau_before_half(fn, holds):
    c = claims.plateau_before_half(_table(fn), k=10)
    assert c.holds is holds and c.inputs["half"] == T / 2


def test_table_goals_against_the_papers_absolute_goals():
    # finals 0.992 + tiny steps at the top: the top 0.25% / 0.5% of all 400 configs
    near = _table(lambda i, e: np.full(len(e), 0.99 + 0.00001 * i), n=400)
    far = _table(lambda i, e: np.full(len(e), 0.5 + 0.001 * i), n=400)
    got = {c.paper: c for c in claims.goals_vs_paper(near)}
    assert set(got) == {0.992, 0.9915}  # MNIST's goals only on an MNIST table
    assert all(c.holds for c in got.values())
    assert got[0.992].value == pytest.approx(
        Goal(top_percent=0.25, over="all").resolve(near))
    assert not any(c.holds for c in claims.goals_vs_paper(far))
    other = claims.goals_vs_paper(_table(_fast, dataset="digits"))
    assert len(other) == 4 and all(c.holds is None for c in other)  # both datasets' goals


def test_claims_without_a_table_say_so():
    for c in claims.table_claims(None):
        assert c.holds is None and c.missing == "a learning-curve table (--table)"


# ----- claims on studies -----------------------------------------------------------------------
def _summary(rows):
    df = pd.DataFrame(rows)
    for col in ("speedup_ci_low", "speedup_ci_high"):
        df[col] = np.nan
    return df


def _study(summary=None, traces=None, settings=(), dataset="mnist", name="s"):
    return SimpleNamespace(name=name, summary=summary if summary is not None else _summary([]),
                           traces=traces, settings=list(settings),
                           provenance={"table_meta": {"dataset": dataset, "num_classes": 10}})


def _tau_rows(m1, m9, base=100.0):
    return [{"optimizer": "smac", "rules": r, "goal": "top1%(all)", "median_s": m,
             "speedup": base / m, "success_rate": 1.0}
            for r, m in (("none", base), ("etr1:tau=1", m1), ("etr1:tau=9", m9))]


@pytest.mark.parametrize("m1,m9,holds,fig4b", [(50.0, 150.0, True, True),
                                                (150.0, 50.0, False, False)])
def test_tau_one_against_tau_nine(m1, m9, holds, fig4b):
    out = claims.tau_tradeoff([_study(_summary(_tau_rows(m1, m9)))])
    trade, mnist, cifar = out
    assert trade.holds is holds and trade.value == pytest.approx(m9 / m1)
    assert "MNIST" in mnist.claim and mnist.holds is fig4b  # tau = 9 slower than no rule
    assert mnist.value == pytest.approx(100.0 / m9)
    assert cifar.holds is None and "a CIFAR-10 study" in cifar.missing


def test_tau_claims_need_a_study_with_both_taus():
    rows = [r for r in _tau_rows(50.0, 150.0) if r["rules"] != "etr1:tau=9"]
    out = claims.tau_tradeoff([_study(_summary(rows))])
    assert all(c.holds is None for c in out)
    assert "ETR-1 at tau = 1 and 9" in out[0].missing


def _traces(rows):
    """Trace rows (optimizer, accuracy at T, diverged) of repeat 0, no rule, one goal."""
    df = pd.DataFrame(rows, columns=["optimizer", "accuracy", "diverged"])
    df["complete"] = ~df["diverged"]
    df["rules"], df["goal"], df["repeat"], df["setting"] = "none", "top1%", 0, 0
    return df


@pytest.mark.parametrize("smac_bad,random_bad,holds", [(1, 6, True), (6, 1, False)])
def test_smac_proposes_fewer_untrainable_configs_than_random(smac_bad, random_bad, holds):
    rows = ([("smac", 0.1, False)] * smac_bad + [("smac", 0.9, False)] * (10 - smac_bad)
            + [("random", 0.12, False)] * (random_bad - 1) + [("random", 0.5, True)]
            + [("random", 0.8, False)] * (10 - random_bad))
    (c,) = claims.fewer_untrainable([_study(traces=_traces(rows))])
    assert c.holds is holds
    assert c.value == smac_bad / 10 and c.inputs["random_share"] == random_bad / 10


def test_untrainable_share_of_random_search_from_the_table():
    table = _table(_fast)  # half of the configs at chance
    rows = [("smac", 0.1, False)] + [("smac", 0.9, False)] * 9
    study = _study(traces=_traces(rows))
    study.provenance["table_meta"] = table.meta
    (c,) = claims.fewer_untrainable([study], table)
    assert c.holds is True and c.inputs["random_share"] == 0.5
    assert "table's candidates" in c.inputs["random_from"]
    (c,) = claims.fewer_untrainable([study])  # neither random runs nor the table
    assert c.holds is None and "random-search runs" in c.missing


@pytest.mark.parametrize("overhead,holds", [(0.4, True), (5.0, False)])
def test_training_against_measured_optimizer_time(overhead, holds):
    table = make_table(10, 4, lambda i, e: np.full(4, 0.5), seconds=1.0)  # 1 s + 0.1 s eval
    # one worker: each job starts after its ask's overhead; 5 configs of 4 epochs
    t, rows = 0.0, []
    for k in range(5):
        t += overhead + 4 * 1.1
        rows.append({"setting": 0, "repeat": 0, "row": k, "epochs": 4, "stopped": False,
                     "time": t})
    setting = {"optimizer": "smac", "rules": [], "goal": "top1%", "charge_overhead": True,
               "workers": 1, "time": "solo", "charge_eval": True}
    study = _study(traces=pd.DataFrame(rows), settings=[setting])
    study.provenance["table_meta"] = table.meta
    (c,) = claims.training_vs_optimizer([study], table)
    assert c.value == pytest.approx(4 * 1.1 / overhead)
    assert c.holds is holds
    (c,) = claims.training_vs_optimizer([study])  # the seconds of training need the table
    assert c.holds is None and c.missing == "a learning-curve table (--table)"


# ----- result folders end to end ---------------------------------------------------------------
def _esgd_folder(root: Path, improving: bool) -> Path:
    """An ESGD folder in the layout `lcsim live esgd` writes, from record frames."""
    finals = {}
    for method, slope in (("esgd", -0.3 if improving else 0.3), ("population", -0.1)):
        rows = [dict(method=method, generation=g, individual=j, slot=j, offspring=False,
                     parents=[], optimizer="sgd", lr=0.1, momentum=0.9, fitness_start=2.0,
                     fitness=2.0 + slope * g + j / 50, backoffs=0, elite=j < 4, selected=True)
                for g in range(3) for j in range(6)]
        rec = pd.DataFrame(rows)
        (root / method).mkdir(parents=True)
        rec.to_parquet(root / method / "records.parquet")
        generations(rec, m=4).to_parquet(root / method / "generations.parquet")
        last = rec[rec.generation == 2]
        finals[method] = pd.DataFrame({"individual": last.individual, "fitness": last.fitness,
                                       "test_loss": last.fitness,
                                       "test_error": last.fitness / 10})
    summarize(finals).to_csv(root / "summary.csv", index=False)
    return root


@pytest.mark.parametrize("improving", [True, False])
def test_esgd_folder_verdicts_in_the_scorecard(tmp_path, improving):
    res = load_esgd(_esgd_folder(tmp_path / "esgd", improving))
    assert set(res.extra["generations"]["method"]) == {"esgd", "population"}
    frame = scorecard(esgd=res)
    esgd = frame[frame.paper.str.startswith("ESGD")].set_index("claim")
    theorem = esgd.filter(like="Theorem 1", axis=0).iloc[0]
    better = esgd.filter(like="population baseline", axis=0).iloc[0]
    assert theorem.verdict == ("holds" if improving else "refuted")
    assert better.verdict == ("holds" if improving else "refuted")
    assert "<= 0" in theorem.criterion


def test_absent_folders_are_named_once_per_paper():
    frame = scorecard(table=_table(_fast))
    rows = frame.set_index("paper")["verdict"]
    assert rows.filter(like="ALRS").tolist() == [
        "not checkable: an `lcsim live alrs-compare` folder (--alrs DIR)"]
    assert rows.filter(like="EPBT").tolist() == [
        "not checkable: an `lcsim live epbt` folder (--epbt DIR)"]
    text = format_scorecard(frame)
    assert "(--esgd DIR)" in text and "(--alrs" in text
    assert text.splitlines()[-1].endswith("not checkable")


def _acc(i, e):  # configs i % 4 == 0 untrainable; others rise at different speeds
    if i % 4 == 0:
        return np.full(len(e), 0.1)
    final = 0.3 + 0.65 * ((i * 17) % 60) / 60
    return 0.1 + (final - 0.1) * (1 - np.exp(-e / (1 + i % 3)))


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A small choi-fig4-like study (SMAC, ETR-1 at tau 1 and 9, two goals) on a written
    MNIST-space table, read back as `lcsim scorecard` reads it."""
    tdir = write_table(tmp_path_factory.mktemp("sc") / "t", 40, T, _acc, per_shard=40,
                       seconds=lambda i, e: np.full(len(e), 5.0 + i % 3))
    table = LookupTable.open(tdir)
    opts = {"n_trees": 10, "n_init": 3}
    settings = with_baselines([ReplayConfig(optimizer="smac", rules=(f"etr1:tau={t}",),
                                            goal=g, optimizer_options=opts)
                               for g in (Goal(top_percent=5, over="all"),
                                         Goal(top_percent=20, over="all")) for t in (1, 9)])
    results = run_settings(table, settings, 3, 0, progress=False)
    out = tmp_path_factory.mktemp("study") / "fig4"
    write_outputs(out, settings, results, study_summary(settings, results, n_boot=50),
                  audit_frame(table, settings, results),
                  {"table": str(tdir), "table_meta": table.meta})
    return tdir, out


def test_cli_scorecard_on_a_table_and_a_study(study_dir, capsys):
    tdir, out = study_dir
    assert main(["scorecard", "--table", str(tdir), "--replay", str(out), "--csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    choi = frame[frame.paper.str.startswith("Choi")]
    trade = choi[choi.claim.str.startswith("ETR-1 at tau = 1 reaches")]
    assert len(trade) == 2 and trade.verdict.isin(["holds", "refuted"]).all()
    # the verdict follows the medians of the study's summary
    summary = load_replay(out).summary.set_index(["rules", "goal"])["median_s"]
    for _, row in trade.iterrows():
        goal = row.scope.rsplit("goal ", 1)[1]
        m1, m9 = summary[("etr1:tau=1", goal)], summary[("etr1:tau=9", goal)]
        assert row.verdict == ("holds" if m1 < m9 else "refuted")
    untrainable = choi[choi.claim.str.startswith("SMAC (EI) proposes")].iloc[0]
    assert untrainable.verdict in ("holds", "refuted")  # from the table's candidates
    assert json.loads(untrainable.inputs)["random_share"] == pytest.approx(0.25)


def test_cli_scorecard_prints_a_table_and_refuses_no_input(study_dir, capsys):
    tdir, out = study_dir
    assert main(["scorecard", "--table", str(tdir)]) == 0
    text = capsys.readouterr().out
    assert "bottom 100 configs end near chance" in text and "criterion" in text
    assert main(["scorecard"]) == 2
    assert "lcsim scorecard: error: nothing to judge" in capsys.readouterr().err
    assert main(["scorecard", "--replay", str(tdir / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_report_page_holds_the_scorecard(study_dir, tmp_path):
    tdir, out = study_dir
    esgd = _esgd_folder(tmp_path / "esgd", improving=True)
    assert main(["report", "--table", str(tdir), "--replay", str(out), "--esgd", str(esgd),
                 "--out", str(tmp_path / "r"), "--dpi", "30"]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Scorecard: the papers" in page and "Theorem 1" in page
    assert "top15_fitness_low" in page and "m_elitist_fitness" in page  # ESGD's new files


def test_real_esgd_folder_reports_and_scores(tmp_path, tiny_mnist_root, capsys):
    """`lcsim live esgd` output as written today (generations.parquet, top-15 ranges) through
    `lcsim report` and `lcsim scorecard`."""
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({
        "dataset": "mnist", "val_size": 20,
        "model": {"space": "mnist", "config": {
            "c1_filters": 2, "c2_filters": 2, "fc_units": 8, "filter_size": 3, "pool1": 2,
            "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "batchnorm"}},
        "config": {"mu": 3, "lam": 4, "generations": 2, "batch_size": 32,
                   "fitness_examples": 50, "recal_batches": 1, "elite_fraction": 0.67}}))
    esgd = tmp_path / "esgd"
    assert main(["live", "esgd", "--preset", str(preset), "--out", str(esgd), "--data-root",
                 str(tiny_mnist_root), "--train-examples", "64", "--method", "esgd",
                 "population", "--no-progress"]) == 0
    assert main(["report", "--esgd", str(esgd), "--out", str(tmp_path / "r"),
                 "--dpi", "30"]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "esgd_fitness.png" in page and "top15_fitness_high" in page
    capsys.readouterr()
    assert main(["scorecard", "--esgd", str(esgd), "--csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    esgd_rows = frame[frame.paper.str.startswith("ESGD")]
    assert len(esgd_rows) == 2 and esgd_rows.verdict.isin(["holds", "refuted"]).all()


def test_a_folder_without_the_columns_its_claims_read_is_not_checkable(tmp_path):
    from lcsim.analysis.results import LiveResults

    runs = pd.DataFrame({"optimizer": ["adam"], "method": ["alrs"], "seed": [0], "lr": [0.1]})
    frame = scorecard(alrs=LiveResults(tmp_path, runs))
    (verdict,) = frame[frame.paper.str.startswith("ALRS")]["verdict"]
    assert verdict.startswith("not checkable: inputs with what the claims read (KeyError")
