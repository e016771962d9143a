"""``eocompress demo`` / ``make demo``: the main job of both halves on the default real data (~2 minutes).

1. Codecs: fits a handful of codecs on real embeddings — Presto 128-d (land cover over Slovenia, algae
   blooms) and EfficientNet-Lite0 1280-d on the same Slovenia pixels — and prints what each costs: bytes
   per vector, compression ratio, reconstruction error, kNN accuracy against float32, and what the
   dimension changes (same labels at 128-d and 1280-d); a CSV and a plot.
2. Product: compresses the real Presto embedding field of a Major-TOM cell into a checksummed,
   georeferenced Zarr product, verifies it and searches it in the compressed domain.
3. Imagery: compresses a window of a real Sentinel-2 cell that the shipped codec never trained on to a
   token file and back, and measures it against JPEG 2000 searched to (at most) the same whole-file bytes,
   through the imagery codec interface (:mod:`eocompress.imagery.codecs`).

Results (tables, one line per step) go to stdout; progress and log lines to stderr (silent with ``-q``
or when stderr is not a terminal), like every other command.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eocompress import data
from eocompress.errors import EOCompressError

#: Codecs shown on the 128-d Presto sets: the study's reference points and the compact end of the frontier.
DEMO_SPECS = [
    "float32", "float16", "int8", "int4", "int2", "binary", "ternary",
    "pca64,int8", "pca32,int8", "pca16,int8", "pca8,int8", "svd32,int4", "rp64,int8", "select32,int8",
    "pq16", "opq16,pq16",
]
#: Codecs shown on the 1280-d set: the same reference points, kept to the ones that fit in seconds at 1280-d.
DEMO_SPECS_1280 = ["float32", "int8", "int4", "binary", "pca64,int8", "pca32,int8", "pca16,int8"]

#: The 1280-d EfficientNet-Lite0 embeddings, pixel-aligned with the Presto land-cover set.
EFFNET_LULC = "embeddings/effnetlite0_lulc_slovenia_1280.npz"

SETS = {
    "lulc": (data.LULC, "Presto 128-d, land cover, Slovenia (70/30 stratified split)"),
    "algae": (data.ALGAE, "Presto 128-d, algae blooms (1.1k samples, geographic split)"),
    "lulc1280": (EFFNET_LULC, "EfficientNet-Lite0 1280-d, the same Slovenia pixels and labels"),
}

MAJORTOM_CLEAR_CELL = "imagery/majortom-core-s2l2a/199U_1099R"

#: What the demo writes under its output folder (checked before any work starts).
PRODUCT_NAME = "majortom_presto_pca16_int8.zarr"
OUTPUT_NAMES = ("codecs.csv", "codecs_knn.png", PRODUCT_NAME, "199U_1099R_512.eotok")


@dataclass
class DemoRow:
    """One codec on one data set."""

    dataset: str
    spec: str
    dims: int
    bytes_per_vector: int
    compression_ratio: float
    relative_error: float
    knn_acc: float
    knn_drop_points: float
    fit_s: float
    #: 95 % paired-bootstrap CI of knn_acc - float32's knn_acc over the test items.
    diff_ci_low: float = 0.0
    diff_ci_high: float = 0.0


def _load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, test mask) for a real set: land cover with a seeded stratified 70/30 split, algae with its own."""
    from sklearn.model_selection import train_test_split

    with np.load(data.data_path(SETS[name][0])) as npz:
        X, y = npz["X"].astype(np.float32, copy=False), npz["y"]
        if name == "algae":
            return X, y, npz["is_test"].astype(bool)
    keep = y != 0  # 0 = no data
    X, y = X[keep], y[keep]
    idx = np.arange(len(y))
    _, test_idx = train_test_split(idx, test_size=0.3, random_state=0, stratify=y)
    test = np.zeros(len(y), bool)
    test[test_idx] = True
    return X, y, test


def _knn_correct(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """Per test item: is the 5-NN (cosine) vote right? (accuracy is its mean; the CIs resample it).

    The study's kNN as the sweep measures it (:func:`eocompress.embeddings.evaluation.metrics.knn_classify`).
    """
    from eocompress.embeddings.evaluation.metrics import knn_classify

    return knn_classify(X_train, y_train, X_test) == y_test


def evaluate_codecs(name: str, specs: list[str], advance=None) -> list[DemoRow]:
    """Fit each spec on the training split of a real set and measure it on the test split."""
    from eocompress.embeddings.codecs import Codec

    X, y, test = _load(name)
    train = ~test
    from eocompress.embeddings.evaluation.stats import paired_bootstrap_ci

    base_correct = _knn_correct(X[train], y[train], X[test], y[test])
    base = float(base_correct.mean())
    centred = float(((X[test] - X[train].mean(0)) ** 2).sum())
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        codec = Codec.from_spec(spec).fit(X[train])
        fit_s = time.perf_counter() - t0
        X_hat = codec.decode(codec.encode(X))
        correct = _knn_correct(X_hat[train], y[train], X_hat[test], y[test])
        acc = float(correct.mean())
        lo, hi = paired_bootstrap_ci(base_correct, correct)
        rel = float(((X[test] - X_hat[test]) ** 2).sum()) / centred
        rows.append(DemoRow(name, codec.spec, X.shape[1], codec.bytes_per_vector, codec.compression_ratio, rel, acc,
                            100 * (base - acc), fit_s, lo, hi))
        if advance is not None:
            advance(1)
    return rows


def _plot(rows: list[DemoRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in SETS if any(r.dataset == n for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sub = sorted((r for r in rows if r.dataset == name), key=lambda r: r.bytes_per_vector)
        base = next(r.knn_acc for r in sub if r.spec == "float32")
        ax.axhline(base, color="grey", ls="--", lw=1, label="float32")
        # Error bars: 95 % paired-bootstrap CI of the difference to float32, drawn around float32's
        # accuracy, so a codec whose bar crosses the dashed line is not distinguishable from float32.
        xs = [r.bytes_per_vector for r in sub]
        ys = [r.knn_acc for r in sub]
        yerr = [[r.knn_acc - (base + r.diff_ci_low) for r in sub], [(base + r.diff_ci_high) - r.knn_acc for r in sub]]
        ax.errorbar(xs, ys, yerr=np.clip(yerr, 0, None), fmt="o", ms=4, capsize=2, lw=0.8, zorder=3,
                    label="codec (95 % CI of Δ vs float32)")
        for r in sub:
            ax.annotate(r.spec, (r.bytes_per_vector, r.knn_acc), fontsize=6.5, xytext=(3, 2),
                        textcoords="offset points", rotation=20)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per vector (log scale)")
        ax.set_ylabel("kNN accuracy (k=5, cosine) — axis zoomed")
        ax.set_title(SETS[name][1], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _print_tables(rows: list[DemoRow]) -> None:
    from rich.table import Table

    from eocompress.cli.app import console

    for name, (_, title) in SETS.items():
        table = Table(title=title)
        for col in ("spec", "B/vector", "ratio", "rel. error", "kNN acc", "drop (points)"):
            table.add_column(col, justify="right" if col != "spec" else "left")
        for r in (r for r in rows if r.dataset == name):
            table.add_row(r.spec, str(r.bytes_per_vector), f"{r.compression_ratio:.0f}x", f"{r.relative_error:.4f}",
                          f"{r.knn_acc:.3f}", f"{r.knn_drop_points:+.1f}")
        console.print(table)

    small = {r.spec: r for r in rows if r.dataset == "lulc"}
    large = {r.spec: r for r in rows if r.dataset == "lulc1280"}
    table = Table(title="What the dimension changes: the same land-cover pixels and labels at 128-d and 1280-d")
    for col in ("spec", "B 128-d", "B 1280-d", "error 128-d", "error 1280-d", "drop 128-d", "drop 1280-d"):
        table.add_column(col, justify="right" if col != "spec" else "left", no_wrap=col == "spec")
    for spec in (s for s in large if s in small):
        a, b = small[spec], large[spec]
        table.add_row(spec, str(a.bytes_per_vector), str(b.bytes_per_vector), f"{a.relative_error:.4f}",
                      f"{b.relative_error:.4f}", f"{a.knn_drop_points:+.1f}", f"{b.knn_drop_points:+.1f}")
    console.print(table)
    console.print(
        "relative error = ||x - x_hat||^2 / ||x - mean||^2 on the test split; drop = float32 kNN accuracy minus "
        "the codec's, in percentage points (positive = worse). Presto needs 4 principal components for 90 % of "
        "its variance, the 1280-d set 89: reducers cost more there, scalar and binary codes do not."
    )


def codecs_demo(out: Path) -> list[DemoRow]:
    """Step 1: codecs on the three real sets; tables on stdout, ``codecs.csv`` and ``codecs_knn.png``."""
    from eocompress._atomic import atomic_path
    from eocompress.cli.app import console
    from eocompress.cli.options import progress

    plan = {"lulc": DEMO_SPECS, "algae": DEMO_SPECS, "lulc1280": DEMO_SPECS_1280}
    rows: list[DemoRow] = []
    with progress("fitting codecs on real embeddings", sum(map(len, plan.values())), "codecs") as advance:
        for name, specs in plan.items():
            rows += evaluate_codecs(name, specs, advance)
    _print_tables(rows)

    csv_path, png_path = out / "codecs.csv", out / "codecs_knn.png"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    with atomic_path(png_path) as tmp:
        _plot(rows, tmp)
    console.print(f"[bold green]codec results:[/] {csv_path} and {png_path}\n")
    return rows


def product_demo(out: Path) -> dict:
    """Step 2: compress the real Major-TOM Presto field to a Zarr product, verify it, search it."""
    from eocompress.cli.app import console
    from eocompress.cli.options import log
    from eocompress.embeddings.products.api import compress
    from eocompress.embeddings.products.search import search
    from eocompress.embeddings.products.verify import product_summary

    field = data.data_path(data.MAJORTOM_FIELD)
    product = out / PRODUCT_NAME
    log(f"compressing {field.name} to a Zarr product with pca16,int8 …")
    compress(field, product, "pca16,int8", chunk=128, overwrite=True)
    summary = product_summary(product)
    console.print(
        f"[bold]product[/] {product}: {summary['codec']} on a {summary['grid']}, {summary['crs']}; "
        f"{summary['bytes_per_vector']} B/pixel, file {summary['file_ratio_vs_float32']}x smaller than the "
        f"float32 GeoTIFF; checksums {summary['checksums']}"
    )
    hits = search(product, pixel=(128, 128), k=5)
    near = ", ".join(f"({h.row},{h.col}) {h.score:.3f}" for h in hits)
    console.print(f"5 nearest pixels to (128,128) by cosine on the decoded codes: {near}\n")
    summary["hits"] = [h.to_dict() for h in hits]
    return summary


def imagery_demo(out: Path) -> dict:
    """Step 3: the default imagery codec (what ``eocompress imagery encode`` uses) on a real cell vs JPEG 2000."""
    from eocompress.imagery.codecs import get_codec

    return codec_imagery_demo(out, get_codec("learned"))


#: A 512 x 512 window of the Major-TOM cell (farmland, river, reservoir): a place the learned codec never saw.
LEARNED_WINDOW = (278, 278, 512, 512)
LEARNED_TOKENS = "199U_1099R_512.eotok"


def codec_imagery_demo(out: Path, codec) -> dict:
    """Encode a held-out window (1/450 of raw uint16 for the learned codec), decode it, and measure JPEG 2000 at
    the largest size that does not exceed that file (its actual bytes printed), all through the codec interface."""
    from eocompress._atomic import atomic_write_bytes
    from eocompress.cli.app import console
    from eocompress.cli.options import log
    from eocompress.imagery.codecs import get_codec, to_input_convention
    from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
    from eocompress.imagery.readers.scenes import read_scene

    cell = data.data_path(MAJORTOM_CLEAR_CELL)
    scene = read_scene(cell)
    window = LEARNED_WINDOW
    scene = scene.crop(*window).select(codec.bands)
    raw = scene.data.nbytes
    tokens = out / LEARNED_TOKENS
    log(f"encoding a {window[2]} x {window[3]} window of Major-TOM cell {cell.name} ({len(codec.bands)} bands) "
        f"with the {codec.name} codec …")
    t0 = time.perf_counter()
    blob = codec.encode(scene)  # the codec's default rate: 1/450 of raw for the learned codec, as `imagery encode`
    encode_s = time.perf_counter() - t0
    atomic_write_bytes(tokens, blob)
    t0 = time.perf_counter()
    recon, georef = codec.decode(blob)
    decode_s = time.perf_counter() - t0
    psnr, sam = dn_psnr_sam(scene.data, to_input_convention(recon, georef, scene.offset), scene.offset, scene.valid)
    result = {"codec": codec.name, "raw_bytes": raw, "file_bytes": len(blob), "ratio": raw / len(blob),
              "psnr_db": psnr, "sam_deg": sam, "encode_s": encode_s, "decode_s": decode_s}
    console.print(
        f"[bold]imagery[/] {cell.name} window {window}: {raw / 1e6:.1f} MB of uint16 -> {tokens} "
        f"{len(blob):,} B ({raw / len(blob):.0f}x, whole file) -> {psnr:.2f} dB, SAM {sam:.2f}° "
        f"(encode {encode_s:.1f} s, decode {decode_s:.1f} s)"
    )
    log(f"JPEG 2000 (all bands, one codestream) searched to at most {len(blob):,} B …")
    anchor = get_codec("jpeg2000", bands=codec.bands)
    try:
        stream = anchor.encode(scene, target_bytes=len(blob))
    except EOCompressError as exc:
        console.print(f"JPEG 2000 cannot fit {len(blob):,} B on this window ({exc})")
    else:
        j_recon, j_georef = anchor.decode(stream)
        j_psnr, j_sam = dn_psnr_sam(scene.data, to_input_convention(j_recon, j_georef, scene.offset), scene.offset,
                                    scene.valid)
        result["jpeg2000"] = {"bytes": len(stream), "psnr_db": j_psnr, "sam_deg": j_sam}
        console.print(f"JPEG 2000 at {len(stream):,} B (ours {len(blob):,} B): {j_psnr:.2f} dB, SAM {j_sam:.2f}°")
    console.print(f"decode it to a GeoTIFF with: eocompress imagery decode {tokens} -o reconstruction.tif")
    return result


def check_inputs(out: Path, overwrite: bool) -> None:
    """Fail before any work: every input present, and no earlier demo output replaced without ``--overwrite``."""
    for relative in (data.LULC, data.ALGAE, EFFNET_LULC, data.MAJORTOM_FIELD, MAJORTOM_CLEAR_CELL):
        data.data_path(relative)
    if out.exists() and not out.is_dir():
        raise EOCompressError(f"{out} is a file; the demo writes a folder: pass -o/--out FOLDER")
    existing = [name for name in OUTPUT_NAMES if (out / name).exists()]
    if existing and not overwrite:
        raise EOCompressError(
            f"{out} already holds demo outputs ({', '.join(existing)}); pass --overwrite to replace them, "
            "or -o/--out another folder"
        )


def run_demo(out: str | Path, overwrite: bool = False) -> list[DemoRow]:
    """Run the three steps on the real data and write everything under ``out``; returns the codec rows."""
    from eocompress.cli.options import log

    out = Path(out)
    check_inputs(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = codecs_demo(out)
    product_demo(out)
    imagery_demo(out)
    log(f"demo done in {time.perf_counter() - t0:.0f} s; everything is under {out}")
    return rows
