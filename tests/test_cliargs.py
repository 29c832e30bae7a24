"""The shared CLI conventions: one error line with exit 2, guarded output folders, devices."""

from __future__ import annotations

import pytest

from lcsim.cli import main
from lcsim.cliargs import OUT_MARKER, check_device, prepare_out
from lcsim.errors import UserError


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
