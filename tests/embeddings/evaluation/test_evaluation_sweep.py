"""The sweep on real data: float32 baseline, statistics, resume, report, recommend and the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from eocompress.embeddings.evaluation import load_dataset
from eocompress.embeddings.evaluation.evaluate import Evaluator
from eocompress.embeddings.evaluation.recommend import recommend
from eocompress.embeddings.evaluation.report import pareto_front, write_report
from eocompress.embeddings.evaluation.sweep import default_grid, is_study_spec, run_sweep
from eocompress.errors import EOCompressError


@pytest.fixture(scope="module")
def algae_ds(data_root):
    return load_dataset(data_root / "embeddings/presto_algae_blooms.npz")


def test_grid_holds_the_study_and_ours():
    grid = default_grid()
    for spec in ("float32", "float16", "int8", "int4", "int2", "binary", "ternary", "pca64,int8",
                 "svd8,binary", "rp256,int4", "select16,int8", "pq8", "tc8", "itq64,binary", "rot,int4"):
        assert spec in grid
    assert is_study_spec("pca8,int8") and not is_study_spec("tc8")


def test_evaluator_reproduces_the_data_readme_and_int8_is_free(algae_ds):
    ev = Evaluator(algae_ds)
    base = ev.evaluate("float32")
    # data README sanity figure for the repo's geographic split: kNN-5 cosine 0.400
    assert base["knn_acc"] == pytest.approx(0.400, abs=0.003)
    assert base["recall_at_10"] == 1.0 and base["mcnemar_p"] == 1.0
    int8 = ev.evaluate("int8")
    assert int8["bytes_per_vector"] == 128 and int8["compression_ratio"] == 4.0
    assert int8["mcnemar_p"] > 0.05 and int8["diff_ci_low"] <= 0 <= int8["diff_ci_high"]
    assert int8["recall_at_10"] > 0.95
    binary = ev.evaluate("binary")
    assert binary["knn_hamming_acc"] != "" and binary["recall_at_10_hamming"] != ""
    assert binary["worst_class"].startswith("severity_")


def test_regression_task_on_real_targets(data_root):
    ds = load_dataset(data_root / "embeddings/presto_algae_blooms.npz", task="regression")
    row = Evaluator(ds).evaluate("pca16,int8")
    assert row["task"] == "regression" and row["knn_acc"] == ""
    assert np.isfinite(row["r2"]) and row["rmse"] > 0 and row["diff_ci_low"] <= row["diff_ci_high"]


def test_unlabelled_set_still_gets_retrieval(tmp_path, algae):
    np.savez(tmp_path / "nolabels.npz", X=algae["X"][:300])
    ds = load_dataset(tmp_path / "nolabels.npz")
    row = Evaluator(ds).evaluate("pca8,int8")
    assert row["task"] == "retrieval" and 0 < row["recall_at_10"] < 1 and row["knn_acc"] == ""


@pytest.mark.slow
def test_sweep_resume_report_and_recommend(tmp_path, algae_ds):
    out = tmp_path / "sweep"
    seen = []
    rows = run_sweep([algae_ds], out, specs=["int8", "pca8,int8"], on_progress=lambda *a: seen.append(a[1]))
    assert [r["spec"] for r in rows] == ["float32", "int8", "pca8,int8"]
    with pytest.raises(EOCompressError, match="--resume"):
        run_sweep([algae_ds], out, specs=["int8"])
    before = (out / "results.csv").read_text()
    rows = run_sweep([algae_ds], out, specs=["int8", "pca8,int8", "tc8"], resume=True)
    assert len(rows) == 4 and (out / "results.csv").read_text().startswith(before.splitlines()[0])
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["spec"] for r in table] == ["float32", "int8", "pca8,int8", "tc8"]
    for col in ("dataset", "spec", "bytes_per_vector", "compression_ratio", "knn_acc", "knn_hamming_acc",
                "linear_acc", "r2", "recall_at_10", "mcnemar_p", "diff_ci_low", "diff_ci_high", "worst_class",
                "worst_class_f1_drop", "fit_s", "encode_s", "decode_s"):
        assert col in table[0]
    report = write_report(out).read_text()
    assert "## presto_algae_blooms" in report and "**int8**" in report and "Beyond the study" in report
    for png in ("pareto_knn.png", "pareto_linear.png", "pca_variance.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    rec = recommend(table, "presto_algae_blooms", max_bytes=64, max_drop=10.0)
    assert float(rec.row["bytes_per_vector"]) <= 64 and "CI" in rec.evidence()
    with pytest.raises(EOCompressError, match="raise --max-bytes"):
        recommend(table, "presto_algae_blooms", max_bytes=4, max_drop=0.1)


def test_pareto_front():
    pts = [(8, 0.5), (16, 0.4), (16, 0.7), (32, 0.6), (64, 0.9)]
    assert pareto_front(pts) == [(8, 0.5), (16, 0.7), (64, 0.9)]


def test_cli_sweep_recommend_and_errors(tmp_path, data_root, capsys):
    from eocompress.cli import main

    algae_path = str(data_root / "embeddings/presto_algae_blooms.npz")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", algae_path, "--spec", "int8", "--out", str(tmp_path / "s"), "--no-report"])
    assert exc.value.code in (0, None)
    assert (tmp_path / "s" / "results.csv").exists()
    with pytest.raises(SystemExit) as exc:
        main(["recommend", algae_path, "--max-bytes", "256", "--max-drop", "5",
              "--results", str(tmp_path / "s" / "results.csv")])
    assert exc.value.code in (0, None)
    assert "recommended" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    X = np.ones((20, 4), np.float32)
    X[2] = np.nan
    np.savez(bad, X=X, y=np.arange(20) % 2)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(bad), "--out", str(tmp_path / "b")])
    assert exc.value.code == 1
    assert "bad.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sweep", algae_path, "--spec", "pca256,int8", "--out", str(tmp_path / "c")])
    assert exc.value.code == 1
