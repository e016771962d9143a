"""Several Major-TOM shards into one token archive, across Dask workers, from the two real cells.

Two shards in the official schema (each cell cropped to 264² at 10 m, so the run stays short on two
cores): shard A holds both cells, shard B the clear cell and the same cell with a truncated band. One
archive comes out, in shard and row order, the damaged row reported in one line and skipped.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from _cli import run_cli
from eocompress._dask import WorkerMemoryMonitor, dask_client
from eocompress.errors import EOCompressError, FileFormatError, InputError
from eocompress.imagery.archives import majortom as mt
from eocompress.imagery.codec.learned import LearnedCodec

pytestmark = pytest.mark.realdata
CELLS = ("0U_199R", "199U_1099R")
CROP = 264


@pytest.fixture(scope="module")
def codec() -> LearnedCodec:
    return LearnedCodec.load("default")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, data_root):
    d = tmp_path_factory.mktemp("shards")
    rows = [mt.cell_row(data_root / "imagery/majortom-core-s2l2a" / c, crop=CROP) for c in CELLS]
    a, b = d / "part_00001.parquet", d / "part_00002.parquet"
    mt.write_shard(rows, a)
    bad = dict(rows[1], B11=rows[1]["B11"][: len(rows[1]["B11"]) // 2], grid_cell="199U_1100R")
    mt.write_shard([rows[1], bad], b)
    return d, [a, b]


def test_two_shards_on_two_workers_give_one_archive(shards, codec):
    """Scheduler path with 2 local workers; each worker's memory polled; same tokens as in this process."""
    d, paths = shards
    seen: list[tuple[str, str | None]] = []
    with dask_client(workers=2) as client, WorkerMemoryMonitor(client) as mon:
        rep = mt.encode_shards(paths, d / "dask.parquet", codec, ratio=200, scheduler=client.scheduler.address,
                               on_row=lambda name, err: seen.append((name, err)))
    assert rep.ran_on.startswith("scheduler") and "2 workers" in rep.ran_on
    assert (rep.rows, rep.written, len(rep.failed)) == (4, 3, 1)
    line = rep.failed[0]
    assert "\n" not in line and line.startswith("part_00002.parquet row 1 (199U_1100R") and "B11" in line
    assert [n.split(" (")[0] for n, _ in seen] == [
        "part_00001.parquet row 0", "part_00001.parquet row 1", "part_00002.parquet row 0", "part_00002.parquet row 1"]
    table = pq.read_table(d / "dask.parquet")
    assert table.column("shard").to_pylist() == ["part_00001.parquet"] * 2 + ["part_00002.parquet"]
    assert table.column("shard_row").to_pylist() == [0, 1, 0]
    assert table.column("grid_cell").to_pylist() == [*CELLS, "199U_1099R"]
    assert len(mon.peak) == 2 and max(mon.peak.values()) < 3 * 2**30  # one 264² row at a time per worker
    # the same archive rows as encoding in this process, shard by shard
    local = mt.encode_shards(paths, d / "local.parquet", codec, ratio=200, workers=0)
    assert local.ran_on == "in this process" and local.written == 3
    ours = pq.read_table(d / "local.parquet").column("tokens").to_pylist()
    theirs = table.column("tokens").to_pylist()
    for x, y in zip(ours, theirs, strict=True):
        if x != y:  # another process may sum floats in another order: then the decode must agree to ~1 DN
            assert abs(len(x) - len(y)) < 0.05 * len(x)
            assert np.abs(codec.decode(x).astype(np.int32) - codec.decode(y).astype(np.int32)).mean() < 2


def test_plan_checks_every_shard_first(shards, tmp_path):
    _, paths = shards
    tasks = mt.plan_shards(paths)
    assert [(t.group, t.first_row, t.rows) for t in tasks] == [(0, 0, 1), (1, 1, 1), (0, 0, 1), (1, 1, 1)]
    assert tasks[0].label == "part_00001.parquet "
    not_shard = tmp_path / "x.parquet"
    pq.write_table(pq.read_table(paths[0], columns=["grid_cell"]), not_shard)
    target = tmp_path / "out.parquet"
    with pytest.raises(FileFormatError, match="not a Major-TOM Core S2 shard"):
        mt.encode_shards([paths[0], not_shard], target, LearnedCodec.load(), ratio=200)
    assert not target.exists()
    with pytest.raises(InputError, match="one of the input shards"):
        mt.encode_shards(paths, paths[1], LearnedCodec.load(), ratio=200, overwrite=True)
    with pytest.raises(InputError, match="no shard given"):
        mt.plan_shards([])


def test_truncated_shard_file_reports_its_rows(shards, codec, tmp_path):
    """A shard whose row data is cut (footer kept) gives one line for the unreadable rows; the rest is written."""
    _, paths = shards
    raw = paths[0].read_bytes()
    pf = pq.ParquetFile(paths[0])
    start = pf.metadata.row_group(1).column(5).data_page_offset  # a band column chunk of row 1
    broken = tmp_path / "part_00003.parquet"
    broken.write_bytes(raw[:start] + b"\0" * 4096 + raw[start + 4096 :])
    rep = mt.encode_shards([broken], tmp_path / "arch.parquet", codec, ratio=200)
    assert rep.written == 1 and len(rep.failed) == 1 and rep.failed[0].startswith("row 1")
    with pytest.raises(EOCompressError, match="no row could be encoded"):
        mt.encode_shards([paths[1]], tmp_path / "none.parquet", codec, ratio=5000)
    assert not (tmp_path / "none.parquet").exists()


def test_cli_encodes_several_shards_and_a_folder(shards, capsys):
    d, paths = shards
    r = run_cli(["imagery", "encode", *map(str, paths), "-o", str(d / "cli.parquet"), "--ratio", "200"], capsys)
    assert r.code == 1, r.text  # the damaged row: exit 1, the others written
    assert "3 of 4 cells" in r.text and "in this process" in r.text and "199U_1100R" in r.text
    assert pq.ParquetFile(d / "cli.parquet").metadata.num_rows == 3
    folder = d / "only_good"
    folder.mkdir()
    (folder / paths[0].name).write_bytes(paths[0].read_bytes())
    r = run_cli(["imagery", "encode", str(folder), "-o", str(d / "folder.parquet"), "--ratio", "200", "--json"],
                capsys)
    assert r.code == 0, r.text
    report = json.loads(r.out)
    assert (report["rows"], report["written"], report["failed"], report["cloud_masks"]) == (2, 2, [], 2)
    assert report["ratio_vs_raw"] >= 200 and report["ran_on"] == "in this process"
    r = run_cli(["imagery", "encode", *map(str, paths), "-o", str(d / "x.tif")], capsys)
    assert r.code != 0 and "ending in .parquet" in r.text


def test_which_inputs_are_shards(shards, tmp_path):
    from eocompress.cli.imagery_archive import shard_inputs, split_inputs

    _, paths = shards
    assert shard_inputs(paths) == paths
    folder = tmp_path / "f"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    assert [p.name for p in shard_inputs([folder])] == [p.name for p in paths]
    assert [p.name for p in shard_inputs([folder / "part_*.parquet"])] == [p.name for p in paths]
    with pytest.raises(InputError, match="matches no file"):
        shard_inputs([folder / "nothing_*.parquet"])
    scene = tmp_path / "scene"
    scene.mkdir()
    (scene / "B02.tif").write_bytes(b"x")
    assert shard_inputs([scene]) is None  # a scene folder: scene mode
    with pytest.raises(InputError, match="not a Parquet shard but other inputs are"):
        shard_inputs([paths[0], scene])
    with pytest.raises(InputError, match="none is a Major-TOM shard"):
        shard_inputs([scene, scene])
    assert split_inputs([paths[0], tmp_path / "o.parquet"], None) == ([paths[0]], tmp_path / "o.parquet")
    assert split_inputs(paths, tmp_path / "o.parquet") == (paths, None)
    with pytest.raises(InputError, match="no -o/--out"):
        split_inputs([*paths, paths[0]], None)


def test_version_1_archive_still_reads(shards, codec, tmp_path):
    """An archive written before the cloud mask (v1: no cloud_mask, shard, shard_row) decodes; samples say NO_MASK."""
    from eocompress.imagery.archives.dataset import NO_MASK, TokenArchiveDataset

    _, paths = shards
    v2 = tmp_path / "v2.parquet"
    mt.encode_shards(paths[:1], v2, codec, ratio=200)
    table = pq.read_table(v2).drop_columns(["cloud_mask", "shard", "shard_row"])
    meta = dict(table.schema.metadata)
    own = json.loads(meta[b"eocompress"])
    own["version"] = 1
    meta[b"eocompress"] = json.dumps(own).encode()
    v1 = tmp_path / "v1.parquet"
    pq.write_table(table.replace_schema_metadata(meta), v1, row_group_size=1)
    sample = TokenArchiveDataset(v1, crop=64)[1]
    assert sample["cloud_mask"].shape == (64, 64) and int(sample["cloud_mask"].min()) == NO_MASK
    rep = mt.decode_archive(v1, tmp_path / "cells", codec)
    assert rep.written == 2 and rep.masks == 0
    assert len(list((tmp_path / "cells").glob("*.tif"))) == 2  # no cloud-mask sidecars
    back = tmp_path / "back.parquet"
    mt.decode_archive(v1, back, codec)
    assert pq.read_table(back, columns=["cloud_mask"]).column(0).null_count == 2
