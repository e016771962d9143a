"""``eocompress demo`` / ``make demo``: the main job on the default real data.

1. Codecs: fits a handful of codecs on the real Presto embeddings (land cover over Slovenia, algae
   blooms) and prints what each costs — bytes per vector, compression ratio, reconstruction error,
   kNN accuracy against float32 — with a CSV and a plot.
2. Product: compresses the real Presto embedding field of a Major-TOM cell into a checksummed,
   georeferenced Zarr product, verifies it and searches it in the compressed domain.
3. Imagery: compresses a held-out real Sentinel-2 scene with the shipped tokenizer and measures it
   against JPEG 2000 at the same file size.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eocompress import data

#: Codecs shown by the demo: the study's reference points and the compact end of the frontier.
DEMO_SPECS = [
    "float32", "float16", "int8", "int4", "int2", "binary", "ternary",
    "pca64,int8", "pca32,int8", "pca16,int8", "pca8,int8", "svd32,int4", "rp64,int8", "select32,int8",
    "pq16", "opq16,pq16",
]


@dataclass
class DemoRow:
    """One codec on one data set."""

    dataset: str
    spec: str
    bytes_per_vector: int
    compression_ratio: float
    relative_error: float
    knn_acc: float
    knn_drop_points: float
    fit_s: float


def _load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, test mask) for a real set: land cover with a seeded stratified 70/30 split, algae with its own."""
    from sklearn.model_selection import train_test_split

    path = data.data_path(data.LULC if name == "lulc" else data.ALGAE)
    with np.load(path) as npz:
        X, y = npz["X"], npz["y"]
        if name == "algae":
            return X, y, npz["is_test"].astype(bool)
    keep = y != 0  # 0 = no data
    X, y = X[keep], y[keep]
    idx = np.arange(len(y))
    _, test_idx = train_test_split(idx, test_size=0.3, random_state=0, stratify=y)
    test = np.zeros(len(y), bool)
    test[test_idx] = True
    return X, y, test


def _knn_accuracy(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(X_train, y_train)
    return float((knn.predict(X_test) == y_test).mean())


def evaluate_codecs(name: str, specs: list[str], progress=None, task=None) -> list[DemoRow]:
    """Fit each spec on the training split of a real set and measure it on the test split."""
    from eocompress.embeddings.codecs import Codec

    X, y, test = _load(name)
    train = ~test
    base = _knn_accuracy(X[train], y[train], X[test], y[test])
    centred = float(((X[test] - X[train].mean(0)) ** 2).sum())
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        codec = Codec.from_spec(spec).fit(X[train])
        fit_s = time.perf_counter() - t0
        X_hat = codec.decode(codec.encode(X))
        acc = _knn_accuracy(X_hat[train], y[train], X_hat[test], y[test])
        rel = float(((X[test] - X_hat[test]) ** 2).sum()) / centred
        rows.append(DemoRow(name, codec.spec, codec.bytes_per_vector, codec.compression_ratio, rel, acc,
                            100 * (base - acc), fit_s))
        if progress is not None:
            progress.advance(task)
    return rows


def _plot(rows: list[DemoRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"lulc": "land cover (Slovenia)", "algae": "algae blooms"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, name in zip(axes, ("lulc", "algae"), strict=True):
        sub = sorted((r for r in rows if r.dataset == name), key=lambda r: r.bytes_per_vector)
        base = next(r.knn_acc for r in sub if r.spec == "float32")
        ax.axhline(base, color="grey", ls="--", lw=1, label="float32")
        ax.scatter([r.bytes_per_vector for r in sub], [r.knn_acc for r in sub], s=18, zorder=3)
        for r in sub:
            ax.annotate(r.spec, (r.bytes_per_vector, r.knn_acc), fontsize=6.5, xytext=(3, 2),
                        textcoords="offset points", rotation=20)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per vector (log scale)")
        ax.set_ylabel("kNN accuracy (k=5, cosine)")
        ax.set_title(f"Presto embeddings: {titles[name]}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def product_demo(out: Path) -> dict:
    """Compress the real Major-TOM Presto field to a Zarr product, verify it, search it; return the summary."""
    from eocompress.cli.app import console
    from eocompress.embeddings.products.api import compress
    from eocompress.embeddings.products.search import search
    from eocompress.embeddings.products.verify import product_summary

    field = data.data_path(data.MAJORTOM_FIELD)
    product = out / "majortom_presto_pca16_int8.zarr"
    compress(field, product, "pca16,int8", chunk=128, overwrite=True)
    summary = product_summary(product)
    console.print(
        f"[bold]product[/] {product}: {summary['codec']} on a {summary['grid']}, {summary['crs']}; "
        f"{summary['bytes_per_vector']} B/pixel, file {summary['file_ratio_vs_float32']}x smaller than the "
        f"float32 GeoTIFF; checksums {summary['checksums']}"
    )
    hits = search(product, pixel=(128, 128), k=5)
    near = ", ".join(f"({h.row},{h.col}) {h.score:.3f}" for h in hits)
    console.print(f"5 nearest pixels to (128,128) by cosine on the decoded codes: {near}")
    summary["hits"] = [h.to_dict() for h in hits]
    return summary


MAJORTOM_CLEAR_CELL = "imagery/majortom-core-s2l2a/199U_1099R"
#: Rows of that cell the default tokenizer never trained on (its config lists the training areas).
HELD_OUT_ROWS = (812, 1068)


def imagery_demo(out: Path) -> dict:
    """Tokenize a real Major-TOM cell to a token file and back to a GeoTIFF; measure its held-out strip vs JPEG 2000."""
    from eocompress.cli.app import console
    from eocompress.imagery.codec.pipeline import ImageryCodec
    from eocompress.imagery.evaluation.evaluate import evaluate_scene
    from eocompress.imagery.evaluation.report import write_report
    from eocompress.imagery.readers.scenes import read_scene

    cell = data.data_path(MAJORTOM_CLEAR_CELL)
    codec = ImageryCodec.from_model("default")
    tokens, recon = out / "199U_1099R.eotok", out / "199U_1099R_reconstruction.tif"
    with console.status("tokenizing the Major-TOM cell 199U_1099R (12 bands, 1068 x 1068) …"):
        codec.encode_file(cell, tokens)
        codec.decode_file(tokens, recon)
    scene = read_scene(cell)
    raw = scene.data.nbytes
    console.print(
        f"[bold]imagery[/] {cell.name}: {raw / 1e6:.1f} MB of uint16 -> {tokens} "
        f"{tokens.stat().st_size / 1e3:.1f} kB ({raw / tokens.stat().st_size:.0f}x) -> {recon}"
    )
    r0, r1 = HELD_OUT_ROWS
    strip = scene.crop(r0, 0, r1 - r0, scene.shape[1])
    with console.status("measuring the held-out strip against JPEG 2000 at the same size …"):
        ev = evaluate_scene(strip, {"default": codec}, baselines=("jpeg2000",))
    written = write_report(ev, out / "imagery")
    tok = ev.metrics["tokenizers"]["default"]
    j2k = ev.metrics["baselines_same_size"].get("jpeg2000", {})
    line = (f"held-out rows {r0}-{r1 - 1}: tokenizer {tok['ratio_vs_raw']:.0f}x, {tok['psnr_db']:.2f} dB, "
            f"SAM {tok['sam_deg']:.2f}°")
    if j2k.get("reached"):
        line += f"; JPEG 2000 at the same size {j2k['psnr_db']:.2f} dB, SAM {j2k['sam_deg']:.2f}°"
    console.print(line)
    console.print(f"imagery report with pictures: {written['report']}")
    return ev.metrics


def run_demo(out: Path) -> list[DemoRow]:
    """Run the codec demo on both real sets, print the table, write CSV + PNG under ``out``."""
    from rich.progress import Progress
    from rich.table import Table

    from eocompress._atomic import atomic_path
    from eocompress.cli.app import console

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = ["lulc", "algae"]
    rows: list[DemoRow] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("fitting codecs on real Presto embeddings", total=len(sets) * len(DEMO_SPECS))
        for name in sets:
            rows += evaluate_codecs(name, DEMO_SPECS, progress, task)

    for name, title in (("lulc", "land cover, Slovenia (10k pixels, 5 classes, 70/30 split)"),
                        ("algae", "algae blooms (1.1k samples, geographic split)")):
        table = Table(title=f"Presto 128-d embeddings: {title}")
        for col in ("spec", "B/vector", "ratio", "rel. error", "kNN acc", "drop (points)"):
            table.add_column(col, justify="right" if col != "spec" else "left")
        for r in (r for r in rows if r.dataset == name):
            table.add_row(r.spec, str(r.bytes_per_vector), f"{r.compression_ratio:.0f}x", f"{r.relative_error:.4f}",
                          f"{r.knn_acc:.3f}", f"{r.knn_drop_points:+.1f}")
        console.print(table)

    csv_path, png_path = out / "codecs.csv", out / "codecs_knn.png"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    with atomic_path(png_path) as tmp:
        _plot(rows, tmp)
    console.print(
        "relative error = ||x - x_hat||^2 / ||x - mean||^2 on the test split; drop = float32 kNN accuracy minus "
        "the codec's, in percentage points (positive = worse)."
    )
    console.print(f"[bold green]codec results:[/] {csv_path} and {png_path}\n")

    product_demo(out)
    imagery_demo(out)
    return rows
