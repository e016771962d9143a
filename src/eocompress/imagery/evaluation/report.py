"""The evaluation report: metrics.json, report.md and PNG figures (rate–distortion, pictures, histograms).

Figures use matplotlib's Agg backend. Colour composites are stretched with the 2nd–98th
percentiles of the *original* image, and the same stretch is applied to every reconstruction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_path, atomic_write_text
from eocompress.imagery.evaluation.evaluate import SceneEvaluation
from eocompress.imagery.evaluation.fidelity import reflectance_dn

TRUE_COLOUR = ("B04", "B03", "B02")
FALSE_COLOUR = ("B08", "B04", "B03")
_COLOURS = {"jpeg2000": "tab:orange", "klt+jpeg2000": "tab:green", "jpegxl": "tab:purple", "learned": "tab:red"}


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _composite(refl: np.ndarray, bands: list[str], triple: tuple[str, ...], lo, hi) -> np.ndarray:
    rgb = np.stack([refl[bands.index(b)] for b in triple], axis=-1)
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def _crop(shape: tuple[int, int], size: int = 320) -> tuple[slice, slice]:
    h, w = shape
    r0, c0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return slice(r0, r0 + min(size, h)), slice(c0, c0 + min(size, w))


def plot_pictures(ev: SceneEvaluation, path: Path, crop: int = 320) -> Path | None:
    """Original / the codec / the anchors side by side, true colour and false colour (B8, B4, B3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = ev.bands
    triples = [t for t in (TRUE_COLOUR, FALSE_COLOUR) if all(b in bands for b in t)]
    if not triples:
        return None
    rows, cols = _crop(ev.original.shape[1:], crop)
    images = {"original": ev.original, **ev.recons}
    m = ev.metrics
    fig, axes = plt.subplots(len(triples), len(images), figsize=(3.2 * len(images), 3.4 * len(triples)),
                             squeeze=False)
    for r, triple in enumerate(triples):
        ref = reflectance_dn(ev.original[:, rows, cols], ev.offset)
        idx = [bands.index(b) for b in triple]
        valid = ev.valid[rows, cols]
        lo = np.array([np.percentile(ref[i][valid], 2) if valid.any() else 0 for i in idx])
        hi = np.array([np.percentile(ref[i][valid], 98) if valid.any() else 1 for i in idx])
        for c, (name, img) in enumerate(images.items()):
            ax = axes[r, c]
            ax.imshow(_composite(reflectance_dn(img[:, rows, cols], ev.offset), bands, triple, lo, hi))
            ax.set_xticks([])
            ax.set_yticks([])
            entry = _entry(m, name)
            title = name
            if entry and entry.get("reached", True):
                title += (f"\n{entry['bytes']:,} B, {entry['psnr_db']:.1f} dB, "
                          f"SAM {entry['sam_deg']:.1f}°")
            ax.set_title(title if r == 0 else "", fontsize=8)
            if c == 0:
                ax.set_ylabel("true colour (B4,B3,B2)" if triple == TRUE_COLOUR else "false colour (B8,B4,B3)",
                              fontsize=8)
    fig.suptitle(f"{Path(m['scene']['source']).name or 'scene'}: centre crop {rows.stop - rows.start}x"
                 f"{cols.stop - cols.start} px, same stretch for all", fontsize=9)
    return _save_figure(fig, path)


def plot_histograms(ev: SceneEvaluation, path: Path) -> Path:
    """Per-band histograms of reflectance: original vs every reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = len(ev.bands)
    ncols = 4
    nrows = -(-c // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    images = {"original": ev.original, **ev.recons}
    for i, band in enumerate(ev.bands):
        ax = axes[i // ncols, i % ncols]
        ref = reflectance_dn(ev.original[i], ev.offset)[ev.valid]
        edges = np.linspace(np.percentile(ref, 0.5), np.percentile(ref, 99.5) + 1, 60)
        for name, img in images.items():
            vals = reflectance_dn(img[i], ev.offset)[ev.valid]
            ax.hist(vals, bins=edges, histtype="step", density=True, label=name,
                    color="black" if name == "original" else _COLOURS.get(name), linewidth=1.0)
        ax.set_title(band, fontsize=8)
        ax.tick_params(labelsize=6)
    for j in range(c, nrows * ncols):
        axes[j // ncols, j % ncols].axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("spectral histograms, reflectance x 10000 (offset removed)", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_rate_distortion(points: dict[str, Any], path: Path, title: str = "") -> Path:
    """PSNR and SAM vs bits/pixel/band: every codec's curve (lines) and the measured files (markers).

    ``points`` = {"files": {name: [(bpppb, psnr, sam), ...]}, "curves": {name: [(bpppb, psnr, sam)]}}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in points.get("curves", {}).items():
        pts = sorted(p for p in pts if p is not None)
        if not pts:
            continue
        x, p, s = zip(*pts, strict=True)
        colour = _COLOURS.get(name.split(" ")[0])
        a1.plot(x, p, "-o", ms=3, label=name, color=colour)
        a2.plot(x, s, "-o", ms=3, label=name, color=colour)
    markers = "*sD^vP"
    for k, (name, pts) in enumerate(points.get("files", {}).items()):
        x, p, s = zip(*pts, strict=True)
        colour = _COLOURS.get(name)
        a1.plot(x, p, markers[k % len(markers)], ms=10, label=f"{name}, evaluated file", color=colour)
        a2.plot(x, s, markers[k % len(markers)], ms=10, label=f"{name}, evaluated file", color=colour)
    for ref in points.get("references", []):
        a1.plot(ref[0], ref[1], "x", color="grey", ms=7)
        a2.plot(ref[0], ref[2], "x", color="grey", ms=7)
    if points.get("references"):
        a1.plot([], [], "x", color="grey", label="JPEG 2000 figures quoted in the issue")
    from matplotlib.ticker import LogLocator, NullFormatter

    for ax, label in ((a1, "PSNR (dB, higher is better)"), (a2, "SAM (degrees, lower is better)")):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bits per pixel per band")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    a1.legend(fontsize=7)
    fig.suptitle(title or "rate–distortion", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def _entry(m: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The measured entry of ``name``: the codec under test or one anchor."""
    return m["codec"] if m["codec"].get("name") == name else m["anchors"].get(name)


def _rd_points(m: dict[str, Any]) -> dict[str, Any]:
    files = {m["codec"]["name"]: [(m["codec"]["bits_per_pixel_per_band"], m["codec"]["psnr_db"],
                                   m["codec"]["sam_deg"])]}
    files.update({n: [(e["bits_per_pixel_per_band"], e["psnr_db"], e["sam_deg"])]
                  for n, e in m["anchors"].items() if e.get("reached")})
    curves = {
        n: [(p["bits_per_pixel_per_band"], p["psnr_db"], p["sam_deg"]) for p in pts if p.get("reached")]
        for n, pts in m["curves"].items()
    }
    return {"files": files, "curves": curves}


def _fmt(v: Any, nd: int = 2) -> str:
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def report_markdown(m: dict[str, Any], figures: dict[str, str]) -> str:
    """The human-readable report of one scene evaluation: every file's actual bytes beside its fidelity."""
    sc, ours = m["scene"], m["codec"]
    target = ours["bytes"]
    lines = [
        f"# Imagery codec evaluation: {Path(sc['source']).name}",
        "",
        f"Scene: `{sc['source']}`, {sc['shape'][0]} bands x {sc['shape'][1]} x {sc['shape'][2]} px, "
        f"DN offset {sc['offset']}, valid fraction {sc['valid_fraction']:.3f}.",
        f"PSNR: {m['psnr_definition']}. SAM: {m['sam_definition']}. RMSE in reflectance x 10000.",
        f"Raw uint16: {m['raw_bytes']:,} B; lossless GeoTIFF (predictor 2): ZSTD "
        f"{m['lossless_geotiff_bytes']['zstd']:,} B, DEFLATE {m['lossless_geotiff_bytes']['deflate']:,} B.",
        "",
        f"Codec under test: `{ours['name']}` "
        + (f"at 1/{m['requested_ratio']:g} of raw uint16" if m.get("requested_ratio") else "at its default rate")
        + f"; its whole file is {target:,} B. Each anchor is searched to the largest whole file of at most "
        f"{target:,} B (georeference and side information counted); the bytes column is each file's actual size.",
        "",
        "| codec | bytes (whole file) | bytes vs ours | bits/px/band | ratio vs raw | ratio vs lossless ZSTD "
        "| PSNR dB | RMSE | SSIM | SAM ° | NDVI MAE | Wasserstein |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    zstd = m["lossless_geotiff_bytes"]["zstd"]
    rows = [(ours["name"], ours), *m["anchors"].items()]
    for name, e in rows:
        if not e.get("reached", True):
            lines.append(f"| {name} | cannot fit {e['target_bytes']:,} B: {e['error']} | | | | | | | | | | |")
            continue
        nbytes = e["bytes"]
        lines.append(
            f"| {name} | {nbytes:,} | {100.0 * (nbytes - target) / target:+.1f} % | "
            f"{e['bits_per_pixel_per_band']:.4f} | {m['raw_bytes'] / nbytes:.0f} | "
            f"{zstd / nbytes:.0f} | {e['psnr_db']:.2f} | {e['rmse']:.0f} | {_fmt(e.get('ssim', ''), 3)} | "
            f"{e['sam_deg']:.2f} | {_fmt(e.get('ndvi_mae', ''), 4)} | {e['wasserstein']:.1f} |"
        )
    lines += ["", "Codecs and timings (encode includes the rate search):", ""]
    for name, e in rows:
        if e.get("reached", True):
            desc = ", ".join(f"{k}={v}" for k, v in e["describe"].items() if k not in ("name", "bands"))
            n = e.get("encoder_runs")
            runs = f" ({n} encoder run{'s' if n != 1 else ''})" if n else ""
            lines.append(f"- {name}: encode {e['encode_s']:.3f} s{runs}, decode {e['decode_s']:.3f} s; {desc}.")
    lines += ["", "## Rate–distortion curves", "", "| codec | target ratio | bytes | bits/px/band | "
              "PSNR dB | SAM ° |", "|---|---|---|---|---|---|"]
    for name, pts in m["curves"].items():
        for p in pts:
            if p.get("reached"):
                lines.append(f"| {name} | 1/{p['target_ratio']} | {p['bytes']:,} | "
                             f"{p['bits_per_pixel_per_band']:.4f} | {p['psnr_db']:.2f} | {p['sam_deg']:.2f} |")
            else:
                lines.append(f"| {name} | 1/{p['target_ratio']} | not reached: {p['error']} | | | |")
    lines += ["", "Per-band PSNR (dB):", "", "| codec | " + " | ".join(sc["bands"]) + " |",
              "|---|" + "---|" * len(sc["bands"])]
    for name, e in rows:
        if e.get("reached", True):
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in e["psnr_db_per_band"].values()) + " |")
    lines += ["", "## Figures", ""]
    lines += [f"![{k}]({v})" for k, v in figures.items()]
    return "\n".join(lines) + "\n"


def write_report(ev: SceneEvaluation, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``rate_distortion.png``, ``pictures.png``, ``histograms.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    written: dict[str, Path] = {}
    rd = plot_rate_distortion(_rd_points(ev.metrics), out / "rate_distortion.png",
                              title=f"{Path(ev.metrics['scene']['source']).name}")
    figures["rate–distortion"] = rd.name
    pics = plot_pictures(ev, out / "pictures.png")
    if pics is not None:
        figures["pictures"] = pics.name
    figures["histograms"] = plot_histograms(ev, out / "histograms.png").name
    written["metrics"] = atomic_write_text(out / "metrics.json", json.dumps(ev.metrics, indent=2, default=float))
    written["report"] = atomic_write_text(out / "report.md", report_markdown(ev.metrics, figures))
    written.update({k: out / v for k, v in figures.items()})
    return written
