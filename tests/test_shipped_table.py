"""The shipped default table (digits-mlp) and the README's main command on it."""

import re
from pathlib import Path

import numpy as np
import pytest
from lcsim.tabular.table import DATA_DIR, LookupTable
from lcsim.tabular.validate import validate_table

from lcsim.cli import main as lcsim


def test_the_default_table_is_digits_mlp():
    assert (DATA_DIR / "DEFAULT").read_text().strip() == "digits-mlp"
    assert (DATA_DIR / "mnist-10k-cpu").is_dir()  # the CNN demonstration table stays


def test_digits_mlp_validates(capsys):
    rep = validate_table(DATA_DIR / "digits-mlp")
    assert rep.ok, rep.errors
    assert lcsim(["table", "validate", "--table", "digits-mlp"]) == 0
    assert ": valid; 2000 configs" in capsys.readouterr().out


def test_table_info_reports_2000_configs_of_50_epochs(capsys):
    assert lcsim(["table", "info", "--table", "default"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"dataset\s+digits\s+space lcbench-mlp\s+epochs 50", out)
    n = int(re.search(r"configs\s+(\d+)", out).group(1))
    assert n >= 2000


def test_digits_mlp_holds_real_spread_curves():
    t = LookupTable.open("default")
    assert t.meta["space"] == "lcbench-mlp" and t.meta["dataset"] == "digits"
    assert t.meta["n_train"] == 1150 and t.meta["n_val"] == 287
    assert np.array_equal(np.sort(t.ids), np.arange(len(t)))  # the Sobol prefix 0..n-1
    final = t.final_accuracy[np.isfinite(t.final_accuracy)]
    # chance (0.1) at the bottom, well-trained MLPs at the top: a table worth replaying
    assert np.percentile(final, 10) < 0.15 and np.percentile(final, 95) > 0.9
    assert np.all(np.isfinite(t.solo_seconds[t.status == "complete"]))
    assert np.all(t.solo_seconds[t.status == "complete"] > 0)


@pytest.fixture(scope="module")
def readme_output(tmp_path_factory):
    """`lcsim study --preset readme` on the default table with 2 repeats (not 20)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = lcsim(["study", "--preset", "readme", "--repeats", "2", "--jobs", "1",
                    "--no-progress"])
    assert rc == 0
    return buf.getvalue()


def test_default_study_prints_the_legend(readme_output):
    assert "Legend (times: simulated seconds" in readme_output
    for word in ("success", "median", "IQR", "speed-up", "stopped/run", "top-k stops",
                 "compute skipped"):
        assert re.search(rf"^\s+{re.escape(word)}\s", readme_output, re.M), word
    assert "time saved" not in readme_output


def test_default_study_has_no_unexplained_inf_or_zero_speedup(readme_output):
    assert not re.search(r"\binf\b|\bnan\b|0\.00x", readme_output, re.I)
    summary = readme_output.split("\n\n")[0]
    units = set(re.findall(r"\[(s|min|h)\]", summary))
    assert units == {"s"}  # one time unit for the whole table
    missed = [ln for ln in summary.splitlines() if "never reached" in ln]
    if missed:  # every goal never reached has its reason below the table
        assert "Missed goals:" in readme_output


def test_readme_shows_what_the_main_command_prints_for_random_search():
    """The README's printed summary is the command's output: its random-search rows (the fast
    path; SMAC's rows cost a minute) recomputed here with the preset's repeats and seed. Rows
    are independent of the other settings (per-repeat seeds, per-row bootstrap streams)."""
    from lcsim.hpo_sim.replay import (
        format_summary,
        load_preset,
        preset_settings,
        run_settings,
        summarize,
    )

    from lcsim import __file__ as pkg

    readme = (Path(pkg).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```\noptimizer      rules")[1].split("```")[0]
    shown = [ln.split() for ln in block.splitlines() if ln.strip().startswith("random")]
    preset = load_preset("readme")
    table = LookupTable.open("default")
    settings = [c for c in preset_settings(preset) if c.optimizer_label == "random"]
    results = run_settings(table, settings, preset["repeats"], seed=preset["seed"],
                           jobs=1, progress=False)
    text = format_summary(summarize(settings, results, seed=preset["seed"], table=table),
                          legend=False)
    ours = [ln.split() for ln in text.splitlines() if ln.strip().startswith("random")]
    assert len(shown) == len(settings) == 5 and ours == shown
