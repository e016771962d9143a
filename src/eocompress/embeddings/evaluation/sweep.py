"""The sweep: every (data set, codec spec) pair evaluated against float32, rows saved as they arrive.

``DIR/results.csv`` is rewritten atomically after each row, so an interrupted sweep keeps what it
finished and ``resume=True`` skips those pairs. ``DIR/intrinsic.csv`` holds the PCA variance table.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from eocompress._atomic import atomic_write_text
from eocompress.embeddings.evaluation.datasets import EmbeddingDataset
from eocompress.embeddings.evaluation.evaluate import COLUMNS, Evaluator
from eocompress.embeddings.evaluation.intrinsic import PCA_DIMS, pca_variance
from eocompress.errors import EOCompressError, SpecError

STUDY_QUANTIZERS = ("float32", "float16", "int8", "int4", "int2", "binary", "ternary")
STUDY_REDUCERS = ("pca", "svd", "rp", "select")
STUDY_DIMS = (8, 16, 32, 64, 128, 256)
STUDY_PQ = ("pq4", "pq8", "pq16", "pq32", "opq8,pq8", "opq16,pq16")
#: Our codecs beyond the study (codecs/advanced.py): transform coding (also on unit-length rows, for
#: cosine search), PCA + residual VQ, ITQ, rotations. Residual VQ needs thousands of training vectors
#: (256 codewords a stage) and takes 10-25 s a fit here, so only the two budgets where it pays are in
#: the default grid.
OURS = (
    "tc4", "tc8", "tc16", "tc32", "tc64",
    "unit,tc8", "unit,tc16", "unit,tc32", "unit,tc64",
    "tcrq16", "tcrq32", "unit,tcrq16", "unit,tcrq32",
    "pca16,rq8", "pca24,rq16",
    "itq64,binary", "itq128,binary",
    "rot,int4", "rot,int2", "pca64,rot,int4", "pca32,rot,int4", "pca64,rot,int2",
)


def study_grid() -> list[str]:
    """The study's grid: plain quantizers, reducers x {int8, int4, binary}, PQ/OPQ."""
    specs = list(STUDY_QUANTIZERS)
    for red in STUDY_REDUCERS:
        for d in STUDY_DIMS:
            specs += [f"{red}{d},{q}" for q in ("int8", "int4", "binary")]
    return specs + list(STUDY_PQ)


def default_grid() -> list[str]:
    """The study's grid plus our codecs."""
    return study_grid() + list(OURS)


GRIDS = {"default": default_grid, "study": study_grid, "ours": lambda: ["float32", *OURS]}


def grid_specs(name: str) -> list[str]:
    """Specs of a named grid: 'default' (study + ours), 'study' or 'ours'."""
    if name not in GRIDS:
        raise EOCompressError(f"unknown grid {name!r}; use one of {', '.join(GRIDS)}")
    return GRIDS[name]()


def is_study_spec(spec: str) -> bool:
    """True for the study's method families (reducers + float/int/binary/ternary, PQ/OPQ)."""
    from eocompress.embeddings.codecs import canonical_spec

    return canonical_spec(spec) in {canonical_spec(s) for s in study_grid()}


def _fits(spec: str, dim: int) -> bool:
    from eocompress.embeddings.codecs import code_size

    try:
        code_size(spec, dim)
    except SpecError:
        return False
    return True


def read_results(path: str | Path, required: str = "spec") -> list[dict[str, str]]:
    """Rows of an existing results.csv (or intrinsic.csv: ``required="dataset"``); [] when absent."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and required not in rows[0]:
        raise EOCompressError(f"{path} is not an eocompress sweep file (no `{required}` column); choose another --out")
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def run_sweep(
    datasets: Iterable[EmbeddingDataset],
    out: str | Path,
    specs: list[str] | None = None,
    split: str = "auto",
    seed: int = 0,
    resume: bool = False,
    linear_cv: str = "baseline",
    on_progress: Callable[[str, str, int, int], None] | None = None,
    strict: bool | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every spec on every data set; write ``out/results.csv`` and ``out/intrinsic.csv`` as it goes.

    ``specs=None`` uses :func:`default_grid`. Specs that do not fit a data set's dimension are
    skipped, unless ``strict`` (default: True when ``specs`` are given) makes them an error. With
    ``resume`` the (dataset, split, spec) rows already in results.csv are kept and not recomputed;
    without it an existing results.csv is an error (so nothing is lost by accident).
    """
    from threadpoolctl import threadpool_limits

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    rows: list[dict[str, Any]] = read_results(results_path)
    if rows and not resume:
        raise EOCompressError(f"{results_path} already exists; pass --resume to continue it or choose another --out")
    intrinsic_rows: list[dict[str, Any]] = read_results(out / "intrinsic.csv", "dataset") if resume else []
    user_specs = (specs is not None) if strict is None else strict
    datasets = list(datasets)
    plan: list[tuple[EmbeddingDataset, list[str]]] = []
    for ds in datasets:
        chosen = []
        for spec in specs or default_grid():
            if _fits(spec, ds.dim):
                chosen.append(spec)
            elif user_specs:
                from eocompress.embeddings.codecs import code_size

                code_size(spec, ds.dim)  # raises the clear SpecError
        if "float32" not in chosen:
            chosen.insert(0, "float32")
        plan.append((ds, chosen))
    total = sum(len(c) for _, c in plan)
    done_keys = {(r["dataset"], r["split"], r["spec"]) for r in rows}
    step = 0
    # one BLAS/OpenMP thread: sklearn on 2 shared cores is 10x slower when oversubscribed
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        for ds, chosen in plan:
            ev = Evaluator(ds, split=split, seed=seed, linear_cv=linear_cv)
            if not any(r.get("dataset") == ds.name and r.get("split") == ev.split_name for r in intrinsic_rows):
                var = pca_variance(ev.X_train)
                intrinsic_rows.append({"dataset": ds.name, "split": ev.split_name, "dim": ds.dim,
                                       **{f"var_{k}": round(v, 5) for k, v in var.items()}})
                _write_csv(out / "intrinsic.csv", intrinsic_rows,
                           ["dataset", "split", "dim"] + [f"var_{k}" for k in PCA_DIMS])
            for spec in chosen:
                step += 1
                if on_progress:
                    on_progress(ds.name, spec, step, total)
                from eocompress.embeddings.codecs import canonical_spec

                canonical = canonical_spec(spec)
                if (ds.name, ev.split_name, canonical) in done_keys:
                    continue
                row = ev.evaluate(spec)
                rows.append(row)
                done_keys.add((ds.name, ev.split_name, canonical))
                _write_csv(results_path, rows, COLUMNS)
    return rows
