"""LookupTable: dense arrays, lookups, cache, and the round trip writer -> LookupTable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcsim.tabular import LookupTable, TableError
from lcsim.tabular.testing import make_frames, make_results, make_table, write_table

T = 8


def curve(i, e):
    # saturating curve whose speed and ceiling depend on the config index
    return 0.1 + (0.5 + 0.04 * (i % 10)) * (1 - np.exp(-e / (1 + i % 5)))


@pytest.fixture
def table():
    return make_table(30, T, curve, status={3: "diverged", 4: "failed", 5: ("diverged", 2)},
                      seconds=lambda i, e: 1.0 + i + 0.1 * e)


def test_dense_arrays_hold_the_closed_form_curves(table):
    assert table.acc.shape == (30, T) and table.ids.dtype == np.int64
    e = np.arange(1, T + 1)
    for i in (0, 7, 29):
        np.testing.assert_array_equal(table.curve(i), curve(i, e))
    assert table.accuracy(7, 3) == curve(7, np.array([3]))[0]
    assert table.features.shape == (30, 9)
    assert ((table.features >= 0) & (table.features <= 1)).all()


def test_status_and_recorded_epochs(table):
    assert list(table.status[3:6]) == ["diverged", "failed", "diverged"]
    assert list(table.n_recorded[3:6]) == [T // 2, 0, 2]
    assert np.isnan(table.acc[3, T // 2:]).all() and not np.isnan(table.acc[3, :T // 2]).any()
    assert np.isnan(table.final_accuracy[[3, 4, 5]]).all()


def test_seconds_sums_first_epochs_and_skips_untrained(table):
    e = np.arange(1, T + 1)
    assert table.seconds(7, 3) == pytest.approx((1.0 + 7 + 0.1 * e[:3]).sum())
    assert table.seconds(7, 0) == 0.0
    # the diverged config trained only T // 2 epochs: later epochs cost nothing
    assert table.seconds(3, T) == pytest.approx(table.seconds(3, T // 2))
    assert table.seconds(7, 3, include_eval=True) == pytest.approx(
        1.1 * (1.0 + 7 + 0.1 * e[:3]).sum())
    with pytest.raises(ValueError, match="kind"):
        table.seconds(7, 3, kind="wall")


def test_measured_seconds_scale_with_concurrency():
    t = make_table(5, T, curve, concurrency=3)
    assert t.seconds(2, T, kind="measured") == pytest.approx(3 * t.seconds(2, T))


def test_goal_is_the_top_percentile_of_complete_final_accuracies(table):
    final = np.array([curve(i, np.array([T]))[0] for i in range(30) if i not in (3, 4, 5)])
    assert table.goal(10) == pytest.approx(np.percentile(final, 90))
    assert table.goal(0) == pytest.approx(final.max())
    with pytest.raises(ValueError, match="top_percent"):
        table.goal(101)


def test_top_bottom_random_k(table):
    final = table.final_accuracy
    top = table.top_k(4)
    order = np.argsort(-np.nan_to_num(final, nan=-1), kind="stable")
    assert list(top) == list(table.ids[order][:4])
    bottom = table.bottom_k(2)
    assert set(bottom).isdisjoint({3, 4, 5})
    assert final[table.rows(bottom)].max() <= np.nanmin(final[table.rows(top)])
    r1, r2 = table.random_k(10, seed=1), table.random_k(10, seed=1)
    assert np.array_equal(r1, r2) and len(set(r1)) == 10
    assert not np.array_equal(r1, table.random_k(10, seed=2))
    with pytest.raises(ValueError, match="k must be"):
        table.top_k(31)


def test_nearest_finds_a_perturbed_config(table):
    cfg = dict(table.config(11))
    cfg["dropout"] = min(0.9, cfg["dropout"] + 0.001)
    assert table.nearest(cfg) == 11


def test_unknown_id_and_epoch_raise(table):
    with pytest.raises(KeyError, match="999"):
        table.curve(999)
    with pytest.raises(ValueError, match="epoch"):
        table.accuracy(0, T + 1)


def test_arrays_are_read_only(table):
    with pytest.raises(ValueError):
        table.acc[0, 0] = 1.0


def test_pickles_for_worker_processes(table):
    import pickle

    u = pickle.loads(pickle.dumps(table))
    np.testing.assert_array_equal(u.acc, table.acc)
    assert u.nearest(table.config(9)) == 9 and not u.acc.flags.writeable


def test_round_trip_writer_to_lookup_table(tmp_path):
    status = {2: "diverged", 6: "failed"}
    d = write_table(tmp_path / "t", 20, T, curve, status=status, per_shard=3,
                    seconds=lambda i, e: 0.5 * e, concurrency=2)
    recs = {r.config_id: r for r in make_results(20, T, curve, status=status,
                                                 seconds=lambda i, e: 0.5 * e, concurrency=2)}
    t = LookupTable.open(d)
    assert list(t.ids) == list(range(20))
    for i, r in recs.items():
        k = len(r.val_accuracy)
        row = t.row(i)
        assert t.n_recorded[row] == k and t.status[row] == r.status
        for a, f in [("acc", "val_accuracy"), ("train_loss", "train_loss"),
                     ("val_loss", "val_loss"), ("train_seconds", "train_seconds"),
                     ("solo_seconds", "solo_seconds"), ("eval_seconds", "eval_seconds")]:
            np.testing.assert_array_equal(getattr(t, a)[row, :k], getattr(r, f))
            assert np.isnan(getattr(t, a)[row, k:]).all()
        assert t.config(i) == r.config
    cf = t.configs_frame()
    assert cf.loc[cf.config_id == 6, "error"].item() == "synthetic failed"
    assert cf.n_params.tolist() == [1000 + i for i in range(20)]


def test_from_frames_equals_open_of_written_table(tmp_path):
    c, u, m = make_frames(12, T, curve)
    a = LookupTable.from_frames(c, u, m)
    b = LookupTable.open(write_table(tmp_path / "t", 12, T, curve, per_shard=5))
    for k in ("acc", "solo_seconds", "features", "ids", "n_recorded"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    pd.testing.assert_frame_equal(a.curves_frame(), b.curves_frame())


def test_cache_is_used_and_invalidated(tmp_path):
    d = write_table(tmp_path / "t", 10, T, curve, per_shard=5)
    LookupTable.open(d)
    cache = d / ".lcsim-cache.npz"
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns
    t = LookupTable.open(d)
    assert cache.stat().st_mtime_ns == stamp and len(t) == 10
    assert t.config(3) == LookupTable.open(d, cache=False).config(3)
    from lcsim.tabular.testing import make_meta
    from lcsim.tabular.writer import TableWriter
    TableWriter(d, make_meta(T)).write(make_results(2, T, curve, start=10))
    assert len(LookupTable.open(d)) == 12  # new shard -> new cache key


def test_unwritable_table_directory_caches_in_user_dir(tmp_path, monkeypatch):
    # A directory squatting on the cache name makes the in-table cache unwritable even for
    # root (chmod does not stop root), like a table under a read-only site-packages.
    d = write_table(tmp_path / "t", 6, T, curve, per_shard=6)
    (d / ".lcsim-cache.npz").mkdir()
    monkeypatch.setenv("LCSIM_CACHE_DIR", str(tmp_path / "cache"))
    t = LookupTable.open(d)
    cached = list((tmp_path / "cache" / "tables").glob("*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = LookupTable.open(d)
    assert cached[0].stat().st_mtime_ns == stamp  # read from the user cache, not rebuilt
    np.testing.assert_array_equal(again.acc, t.acc)


def test_no_writable_cache_anywhere_still_opens(tmp_path, monkeypatch):
    d = write_table(tmp_path / "t", 6, T, curve, per_shard=6)
    (d / ".lcsim-cache.npz").mkdir()
    (tmp_path / "blocked").write_text("a file where the cache dir should be")
    monkeypatch.setenv("LCSIM_CACHE_DIR", str(tmp_path / "blocked"))
    assert len(LookupTable.open(d)) == 6


def test_open_rejects_duplicate_config_across_shards(tmp_path):
    d = write_table(tmp_path / "t", 6, T, curve, per_shard=6)
    from lcsim.tabular.testing import make_meta
    from lcsim.tabular.writer import TableWriter
    TableWriter(d, make_meta(T)).write(make_results(1, T, curve, start=2))
    with pytest.raises(TableError, match=r"committed more than once: 2; in configs/\S+ \(2\); "
                       r"configs/\S+ \(2\)\. .*run `lcsim table repair "):
        LookupTable.open(d)


def test_open_default_without_shipped_table_is_a_clear_error(monkeypatch, tmp_path):
    import lcsim.tabular.table as tt
    monkeypatch.setattr(tt, "DATA_DIR", tmp_path)
    with pytest.raises(TableError, match="no default table"):
        LookupTable.open("default")
    write_table(tmp_path / "tiny", 4, T, curve, per_shard=4)
    (tmp_path / "DEFAULT").write_text("tiny\n")
    assert len(LookupTable.open("default")) == 4 and len(LookupTable.open("tiny")) == 4


def test_open_a_file_of_the_table(tmp_path):
    d = write_table(tmp_path / "t", 5, T, curve, per_shard=5)
    f = next((d / "curves").glob("[!.]*.parquet"))
    assert len(LookupTable.open(f)) == 5


def test_open_a_truncated_shard_names_the_file(tmp_path):
    d = write_table(tmp_path / "t", 6, T, curve, per_shard=3)
    f = next((d / "configs").glob("[!.]*.parquet"))
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(TableError, match=f"{f.name}: not a readable Parquet file"):
        LookupTable.open(d)


def test_complete_config_missing_an_epoch_is_rejected_on_load():
    c, u, m = make_frames(4, T, curve)
    u = u[~((u.config_id == 2) & (u.epoch == 5))]
    with pytest.raises(TableError, match="config_id 2 is missing epoch"):
        LookupTable.from_frames(c, u, m)


def test_pandas_and_pyarrow_read_the_files_without_lcsim(tmp_path):
    import json

    import pyarrow.parquet as pq
    d = write_table(tmp_path / "t", 7, T, curve, per_shard=3)
    cur = pd.read_parquet(d / "curves")
    cfg = pq.read_table(d / "configs").to_pandas()
    assert len(cur) == 7 * T and sorted(cfg.config_id) == list(range(7))
    assert cur.epoch.min() == 1 and cur.epoch.max() == T
    shard = next((d / "curves").glob("[!.]*.parquet"))
    meta = json.loads(pq.read_schema(shard).metadata[b"lcsim"])
    assert meta["epochs"] == T and meta["space"] == "mnist"
