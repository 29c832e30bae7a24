"""The shared CLI conventions: one error line with exit 2, guarded output folders, devices."""

from __future__ import annotations

import pytest

from lcsim.cli import main
from lcsim.cliargs import OUT_MARKER, check_device, prepare_out, release_outs
from lcsim.errors import UserError


@pytest.fixture(autouse=True)
def _release():
    yield
    release_outs()  # prepare_out called directly holds its folder until released


def test_user_error_is_one_line_with_exit_2(capsys, tmp_path):
    rc = main(["replay", "--table", str(tmp_path / "missing"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("lcsim replay: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_debug_flag_shows_the_traceback(capsys, tmp_path):
    assert main(["--debug", "replay", "--table", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_prepare_out_resumes_same_settings_and_refuses_others(tmp_path):
    d = tmp_path / "out"
    prepare_out(d, {"a": 1}, force=False, results=["summary.csv"])
    (d / "summary.csv").write_text("x")
    (d / "notes.txt").write_text("mine")
    prepare_out(d, {"a": 1}, force=False, results=["summary.csv"])  # same settings: resume
    assert (d / "summary.csv").exists()
    with pytest.raises(UserError, match=r"a: 1 -> 2.*summary\.csv.*--force"):
        prepare_out(d, {"a": 2}, force=False, results=["summary.csv"])
    prepare_out(d, {"a": 2}, force=True, results=["summary.csv"])
    assert not (d / "summary.csv").exists()  # stale results removed
    assert (d / "notes.txt").read_text() == "mine"  # the user's own file stays
    assert '"a": 2' in (d / OUT_MARKER).read_text()


def test_prepare_out_refuses_unrecorded_results(tmp_path):
    (tmp_path / "summary.csv").write_text("from somewhere else")
    with pytest.raises(UserError, match="no record"):
        prepare_out(tmp_path, {"a": 1}, force=False, results=["summary.csv"])


def test_cuda_device_without_cuda_says_how_to_run_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(UserError, match="no CUDA device is visible.*--device cpu"):
        check_device("cuda")
    with pytest.raises(UserError, match="not a torch device"):
        check_device("gpu0")
    assert check_device("cpu") == "cpu"


def test_prepare_out_globs_and_rewrite_mode(tmp_path):
    d = tmp_path / "out"
    results = ["index.html", "table_*.png"]
    prepare_out(d, {"a": 1}, force=False, results=results, resume=False)
    for name in ("index.html", "table_a.png", "table_b.png", "mine.png"):
        (d / name).write_text("x")
    # same settings, a command that rewrites everything: its own earlier files go first
    prepare_out(d, {"a": 1}, force=False, results=results, resume=False)
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == [
        OUT_MARKER, "mine.png"]


def test_refusal_names_the_setting_that_changed(tmp_path):
    d = tmp_path / "out"
    old = {"seed": 0, "settings": [{"goal": "top5%", "rules": []}, {"goal": "top5%"}]}
    prepare_out(d, old, force=False, results=["s.csv"])
    (d / "s.csv").write_text("x")
    new = {"seed": 0, "settings": [{"goal": "top1%", "rules": []}, {"goal": "top5%"}]}
    with pytest.raises(UserError, match=r"settings\[0\]\.goal: 'top5%' -> 'top1%'\): s\.csv"):
        prepare_out(d, new, force=False, results=["s.csv"])
    with pytest.raises(UserError, match=r"settings: 2 -> 1 entries"):
        prepare_out(d, {**new, "settings": new["settings"][:1]}, force=False,
                    results=["s.csv"])


def test_a_record_without_results_is_simply_replaced(tmp_path):
    prepare_out(tmp_path, {"a": 1}, force=False, results=["s.csv"])
    prepare_out(tmp_path, {"a": 2}, force=False, results=["s.csv"])  # nothing to lose
    assert '"a": 2' in (tmp_path / OUT_MARKER).read_text()


@pytest.mark.parametrize("argv", [["--help"], ["replay", "--help"]])
def test_help_returns_0(capsys, argv):
    assert main(argv) == 0
    assert "usage: lcsim" in capsys.readouterr().out


def test_a_folder_of_another_command_is_refused(tmp_path):
    prepare_out(tmp_path, {"command": "lcsim replay", "seed": 0}, force=False,
                results=["summary.csv"])
    with pytest.raises(UserError, match="holds the results of `lcsim replay`; give this "
                                        "command its own --out"):
        prepare_out(tmp_path, {"command": "lcsim report"}, force=False, results=["*.png"])
