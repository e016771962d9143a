"""Issue 11 faults of the evaluation commands: sweeps whose report used to crash, odd labels, the CLI grammar."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eocompress.embeddings.evaluation import load_dataset
from eocompress.embeddings.evaluation.datasets import DatasetError
from eocompress.embeddings.evaluation.report import plot_pareto, write_report
from eocompress.embeddings.evaluation.sweep import run_sweep


def _cli(args: list[str]) -> int:
    from eocompress.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code or 0


@pytest.fixture(scope="module")
def algae_path(data_root):
    return str(data_root / "embeddings/presto_algae_blooms.npz")


def test_readme_regression_sweep_writes_its_report(tmp_path, algae_path, capsys):
    # the README's own command died in the Pareto plot (log axis with no kNN accuracies)
    out = tmp_path / "r"
    assert _cli(["sweep", algae_path, "--task", "regression", "--split", "random", "--spec", "int8",
                 "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "pareto_knn_r2.png" in report and "pareto_knn.png" not in report
    assert (out / "pareto_knn_r2.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "pareto_knn.png").exists()
    assert "R²" in report and "Time per stage" in report


def test_linear_cv_off_sweep_has_no_linear_plot(tmp_path, algae_path):
    out = tmp_path / "off"
    assert _cli(["sweep", algae_path, "--linear-cv", "off", "--spec", "int8", "-o", str(out)]) == 0
    assert (out / "pareto_knn.png").exists() and not (out / "pareto_linear.png").exists()
    assert "linear off" in (out / "report.md").read_text()


def test_unlabelled_sweep_reports_retrieval_only(tmp_path, algae):
    np.savez(tmp_path / "nolabels.npz", X=algae["X"][:400])
    out = tmp_path / "nl"
    assert _cli(["sweep", str(tmp_path / "nolabels.npz"), "--spec", "pca8,int8", "-o", str(out)]) == 0
    assert (out / "pareto_recall.png").exists() and not (out / "pareto_knn.png").exists()
    assert "retrieval (recall@10) only" in (out / "report.md").read_text()


def test_plot_pareto_without_values_draws_nothing(tmp_path):
    rows = [{"dataset": "d", "spec": "int8", "bytes_per_vector": "128", "knn_acc": ""}]
    assert plot_pareto(rows, "knn_acc", tmp_path / "p.png", "kNN") is False
    assert not (tmp_path / "p.png").exists()


def test_text_labels_become_named_classes(tmp_path, algae):
    names = np.array(["none", "low", "mid", "high", "severe", "extreme"])
    np.savez(tmp_path / "text.npz", X=algae["X"], y=names[algae["y"]], is_test=algae["is_test"])
    ds = load_dataset(tmp_path / "text.npz")
    assert ds.task == "classification" and ds.y.dtype == np.int64
    assert sorted(ds.class_names.values()) == sorted(set(names[algae["y"]].tolist()))
    rows = run_sweep([ds], tmp_path / "s", specs=["int8"], linear_cv="off")
    assert rows[1]["worst_class"] in ds.class_names.values()
    with pytest.raises(DatasetError, match="text"):
        load_dataset(tmp_path / "text.npz", task="regression")


def test_object_labels_are_one_line_errors(tmp_path, algae, capsys):
    X = algae["X"][:50]
    np.savez(tmp_path / "obj.npz", X=X, y=np.array([{"a": 1}] * 50, dtype=object), allow_pickle=True)
    assert _cli(["sweep", str(tmp_path / "obj.npz"), "--spec", "int8", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "obj.npz" in err and "Python objects" in err and len(err.splitlines()) == 1
    # objects in memory (e.g. from Parquet): numbers convert, anything else is our error
    from eocompress.embeddings.evaluation.datasets import EmbeddingDataset, finalize_dataset

    mixed = EmbeddingDataset("m", "m.parquet", X, y=np.array([1.5, None] * 25, dtype=object))
    assert finalize_dataset(mixed).task == "regression"
    bad = EmbeddingDataset("b", "b.parquet", X, y=np.array([{"a": 1}] * 50, dtype=object))
    with pytest.raises(DatasetError, match="neither numbers nor text"):
        finalize_dataset(bad)


def test_sweep_cli_errors_and_out_grammar(tmp_path, algae_path, capsys):
    assert _cli(["sweep", algae_path, "--spec", "int8", "--linear-cv", "off"]) == 1
    assert "-o/--out" in capsys.readouterr().err
    assert _cli(["sweep", algae_path, "--spec", "int8", "--linear-cv", "sometimes", "-o", str(tmp_path / "x")]) == 1
    assert "--linear-cv" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert _cli(["sweep", algae_path, "--spec", "int8", "-o", str(tmp_path / "file")]) == 1
    assert "is a file" in capsys.readouterr().err


def test_storage_and_recommend_json(tmp_path, algae_path, capsys):
    assert _cli(["storage", "--dims", "1024", "--codec", "float32", "--codec", "pca64,int8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["bytes_per_vector"] for r in rows] == [4096, 64]
    out = tmp_path / "s"
    assert _cli(["sweep", algae_path, "--spec", "int8", "--spec", "pca16,int8", "-o", str(out), "--no-report",
                 "--linear-cv", "off"]) == 0
    capsys.readouterr()
    assert _cli(["recommend", algae_path, "--max-bytes", "256", "--max-drop", "5",
                 "--results", str(out / "results.csv"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["recommended"] in ("int8", "pca16,int8") and "CI" in payload["evidence"]
    assert _cli(["recommend", algae_path, "--max-bytes", "16", "--max-drop", "-1",
                 "--results", str(out / "results.csv")]) == 1


def test_report_of_old_results_without_cpu_columns(tmp_path, algae_path):
    # results.csv written before the CPU-time columns existed still gets a report
    import csv

    from eocompress.embeddings.evaluation.evaluate import COLUMNS

    ds = load_dataset(algae_path)
    rows = run_sweep([ds], tmp_path, specs=["int8"], linear_cv="off")
    cols = [c for c in COLUMNS if not c.endswith("cpu_s")]
    with open(tmp_path / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert "Time per stage" in write_report(tmp_path).read_text()
