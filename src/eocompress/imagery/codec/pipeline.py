"""The imagery codec: Sentinel-2 scenes -> token files -> georeferenced uint16 GeoTIFFs.

The image is padded (edge mode) to a multiple of the model's downsampling factor f, its index
grid is cut into blocks of ``tile_size / f`` positions, and every block is encoded from a pixel
window that reaches ``halo`` positions into its neighbours (and decoded from an index window with
the same halo); at the image edges the window is shifted inwards instead of cut, so every window
has the same size and edge tiles get as much context as interior ones. Nodata pixels are filled from their
nearest valid neighbour before encoding and restored as nodata (DN 0) on decode.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eocompress.errors import InputError
from eocompress.geotiff import PixelWindow, write_cog
from eocompress.imagery.codec.tokenfile import FORMAT_VERSION, TokenFile, TokenFileError

QUANTIFICATION_VALUE = 10000.0
#: Metadata copied from the scene into the token file header and the decoded GeoTIFF's tags.
META_KEYS = ("grid_cell", "product_id", "timestamp", "processing_level", "processing_baseline")
Progress = Callable[[int], None]


class TokenizerLike(Protocol):
    """What the codec needs from a tokenizer (``eocompress.imagery.tokenizer.Tokenizer`` provides it)."""

    config: Any
    model_id: str

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Reflectance float32 (N, C, H, W) -> int64 indices (N, G, H/f, W/f)."""

    def decode(self, idx: np.ndarray) -> np.ndarray:
        """Indices (N, G, h, w) -> reflectance float32 (N, C, h·f, w·f)."""


def load_tokenizer(model: str | os.PathLike = "default", device: str = "cpu") -> TokenizerLike:
    """Load a tokenizer by name (``"default"``) or from a model directory (config.json + weights)."""
    from eocompress.imagery.tokenizer import Tokenizer

    return Tokenizer.load(model, device=device)


def _codebook_size(tok: TokenizerLike) -> int:
    cfg = tok.config
    return int(getattr(cfg, "effective_codebook_size", None) or cfg.codebook_size)


def fill_nodata(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels (all bands) by the nearest valid pixel, so nodata does not bleed into tokens."""
    from scipy.ndimage import distance_transform_edt

    if valid.all() or not valid.any():
        return x
    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    return x[:, rows, cols]


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _taper(lo: int, hi: int, n: int, halo: int, scale: int) -> np.ndarray:
    """Overlap-add weights along one axis of a window: linear ramps over the halo, none at image edges."""
    length, ramp = (hi - lo) * scale, max(1, halo * scale)
    pos = np.arange(length, dtype=np.float32) + 0.5
    weight = np.ones(length, dtype=np.float32)
    if lo > 0:
        weight = np.minimum(weight, pos / ramp)
    if hi < n:
        weight = np.minimum(weight, (length - pos) / ramp)
    return np.maximum(weight, 1e-3)


def _window_span(start: int, n: int, tile: int, halo: int) -> tuple[int, int]:
    """Model window (in positions) around the block starting at ``start``: ``tile + 2 halo`` long where
    the grid allows, shifted inwards at the edges rather than cut, so edge tiles see as much context
    (and the same window size, hence the same normalisation statistics) as interior ones."""
    size = min(n, tile + 2 * halo)
    lo = min(max(0, start - halo), n - size)
    return lo, lo + size


class ImageryCodec:
    """Encode uint16 band stacks to token files and back with a tokenizer (scikit-learn style: no fitting).

    ``halo`` is the context, in index positions, each tile sees on every side when encoding and
    decoding; with ``blend`` the decoded windows are overlap-added with linear ramps across the halo
    (no seams between tiles) instead of keeping only each window's centre; ``batch_size`` is the
    number of tiles per model call.
    """

    def __init__(self, tokenizer: TokenizerLike, halo: int = 2, batch_size: int = 16, blend: bool = True) -> None:
        if halo < 0 or batch_size < 1:
            raise InputError(f"halo must be >= 0 and batch_size >= 1, got {halo} and {batch_size}")
        self.tokenizer = tokenizer
        self.halo = int(halo)
        self.blend = bool(blend)
        self.batch_size = int(batch_size)
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_model(cls, model: str | os.PathLike = "default", device: str = "cpu", **kwargs: Any) -> ImageryCodec:
        """A codec for the named model or model directory, on ``device`` (cpu, cuda)."""
        return cls(load_tokenizer(model, device), **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def bands(self) -> list[str]:
        """The bands the model takes, in order."""
        return list(self.tokenizer.config.bands)

    @property
    def downsample(self) -> int:
        """f: pixels per index position along each axis."""
        return int(self.tokenizer.config.downsample)

    @property
    def tile_positions(self) -> int:
        """Index positions per tile side (tile_size / f)."""
        return max(1, int(self.tokenizer.config.tile_size) // self.downsample)

    def tile_count(self, height: int, width: int) -> int:
        """Number of model tiles for an image of ``height`` x ``width`` pixels."""
        f, tp = self.downsample, self.tile_positions
        return len(_blocks(-(-height // f), tp)) * len(_blocks(-(-width // f), tp))

    # ------------------------------------------------------------------ core tiling
    def _run_tiled(
        self,
        grid_shape: tuple[int, int],
        take: Callable[[int, int, int, int], np.ndarray],
        model: Callable[[np.ndarray], np.ndarray],
        scale: int,
        out: np.ndarray,
        progress: Progress | None,
        weights: np.ndarray | None = None,
    ) -> None:
        """Cut the index grid into tiles with a halo; run ``model`` on same-shaped windows in batches.

        ``take(r0, r1, c0, c1)`` returns the model input for the index window; ``scale`` converts
        index positions to output positions (f for decoding, 1 for encoding) when writing into ``out``.
        """
        gh, gw = grid_shape
        tp, halo = self.tile_positions, self.halo
        groups: dict[tuple, list] = defaultdict(list)
        for r0, r1 in _blocks(gh, tp):
            for c0, c1 in _blocks(gw, tp):
                (w0, w1), (v0, v1) = _window_span(r0, gh, tp, halo), _window_span(c0, gw, tp, halo)
                groups[(w1 - w0, v1 - v0)].append((r0, r1, c0, c1, w0, w1, v0, v1))
        for tiles in groups.values():
            for start in range(0, len(tiles), self.batch_size):
                chunk = tiles[start : start + self.batch_size]
                batch = np.stack([take(w0, w1, v0, v1) for _, _, _, _, w0, w1, v0, v1 in chunk])
                result = model(batch)
                for (r0, r1, c0, c1, w0, w1, v0, v1), res in zip(chunk, result, strict=True):
                    if weights is not None:  # feathered overlap-add of whole windows
                        taper = np.outer(_taper(w0, w1, gh, halo, scale), _taper(v0, v1, gw, halo, scale))
                        rows, cols = slice(w0 * scale, w1 * scale), slice(v0 * scale, v1 * scale)
                        out[:, rows, cols] += res * taper
                        weights[rows, cols] += taper
                        continue
                    dr, dc = (r0 - w0) * scale, (c0 - v0) * scale
                    out[:, r0 * scale : r1 * scale, c0 * scale : c1 * scale] = res[
                        :, dr : dr + (r1 - r0) * scale, dc : dc + (c1 - c0) * scale
                    ]
                if progress is not None:
                    progress(len(chunk))


    # ------------------------------------------------------------------ arrays
    def encode_array(
        self,
        data: np.ndarray,
        bands: list[str] | None = None,
        offset: int = 0,
        crs: Any = None,
        transform: Any = None,
        meta: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> TokenFile:
        """Encode a uint16 (C, H, W) DN stack (bands in ``bands`` order, DN offset ``offset``) to a TokenFile.

        Bands the model needs are selected (missing ones are named in the error); DN 0 is nodata:
        filled from the nearest complete pixel for encoding and restored as 0 on decode. Cloud-masked
        pixels are ordinary data here.
        """
        from eocompress.imagery.readers.bands import band_indices

        t0 = time.perf_counter()
        data = np.asarray(data)
        if data.ndim != 3 or data.dtype != np.uint16:
            raise InputError(
                "encode_array takes a uint16 (C, H, W) stack of Sentinel-2 DNs, "
                f"got {data.dtype} {data.shape}"
            )
        bands = list(bands) if bands is not None else self.bands
        if len(bands) != data.shape[0]:
            raise InputError(f"{len(bands)} band names for {data.shape[0]} planes; give one name per plane")
        data = data[band_indices(bands, self.bands)]
        _, h, w = data.shape
        f = self.downsample
        has_data = data != 0  # per band: DN 0 is ESA nodata
        refl = (data.astype(np.float32) - np.float32(offset)) / np.float32(QUANTIFICATION_VALUE)
        if not has_data.all():
            refl = fill_nodata(refl, has_data.all(axis=0))
        ph, pw = -(-h // f) * f, -(-w // f) * f
        refl = np.pad(refl, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
        gh, gw = ph // f, pw // f
        groups = int(getattr(self.tokenizer, "indices_per_position", 0) or 0)
        indices: np.ndarray | None = np.zeros((groups, gh, gw), np.int64) if groups else None

        def take(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return refl[:, r0 * f : r1 * f, c0 * f : c1 * f]

        takes_valid = "valid" in inspect.signature(self.tokenizer.encode).parameters

        def model(batch: np.ndarray) -> np.ndarray:
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            if takes_valid:  # nodata is already filled: every pixel is data (dark water may be <= 0)
                valid = np.ones((batch.shape[0], *batch.shape[2:]), dtype=bool)
                return np.asarray(self.tokenizer.encode(batch, valid=valid))
            return np.asarray(self.tokenizer.encode(batch))

        if not has_data.any():
            # Nothing but nodata: store an empty (all-zero) index grid; the mask restores DN 0 on decode.
            warnings.warn("the scene is entirely nodata (DN 0); the token file only records its extent", stacklevel=2)
            indices = np.zeros((groups or 1, gh, gw), np.int64)
        else:
            if indices is None:  # learn G from one call
                probe = model(take(0, 1, 0, 1)[None])
                indices = np.zeros((probe.shape[1], gh, gw), np.int64)
            self._run_tiled((gh, gw), take, model, 1, indices, progress)
        header = self._header(self.bands, h, w, offset, crs, transform, meta)
        mask = None
        if not has_data.all():  # one (H, W) mask when every band has the same nodata, else one per band
            mask = has_data[0] if (has_data == has_data[0]).all() else has_data
        token_file = TokenFile(indices=indices, header=header, valid=mask)
        self.last_timings["encode_s"] = time.perf_counter() - t0
        return token_file

    def _header(self, bands, h, w, offset, crs, transform, meta) -> dict[str, Any]:
        tok = self.tokenizer
        f, tp = self.downsample, self.tile_positions
        header: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_id": tok.model_id,
            "weights_sha256": tok.model_id,
            "model_name": getattr(tok, "name", None) or getattr(tok.config, "name", None),
            "quantizer": getattr(tok.config, "quantizer", None),
            "codebook_size": _codebook_size(tok),
            # FSQ indices are mixed-radix numbers of their levels: the entropy coder codes those digits.
            "index_radices": list(tok.config.fsq_levels) if getattr(tok.config, "quantizer", "") == "fsq" else None,
            "downsample": f,
            "bands": list(bands),
            "height": int(h),
            "width": int(w),
            "dtype": "uint16",
            "nodata": 0,
            "offset": int(offset),
            "quantification_value": QUANTIFICATION_VALUE,
            "tiling": {
                "tile_size": tp * f,
                "halo_positions": self.halo,
                "padded_height": -(-h // f) * f,
                "padded_width": -(-w // f) * f,
                "pad_mode": "edge",
                "tiles": [len(_blocks(-(-h // f), tp)), len(_blocks(-(-w // f), tp))],
            },
            "crs": _crs_text(crs),
            "transform": None if transform is None else [float(v) for v in tuple(transform)[:6]],
        }
        for key in META_KEYS:
            if meta and meta.get(key) is not None:
                header[key] = str(meta[key])
        return header

    def decode_array(self, token_file: TokenFile, progress: Progress | None = None) -> np.ndarray:
        """Decode a TokenFile to a uint16 (C, H, W) DN stack in the original convention (offset, nodata 0)."""
        t0 = time.perf_counter()
        token_file.check_model(self.tokenizer.model_id, getattr(self.tokenizer, "name", None))
        hd = token_file.header
        idx = np.asarray(token_file.indices, dtype=np.int64)
        f = self.downsample
        if int(hd.get("downsample", f)) != f:
            raise TokenFileError(f"token file made with downsampling {hd['downsample']}, model uses {f}")
        _, gh, gw = idx.shape
        if list(hd.get("bands") or self.bands) != self.bands:
            raise TokenFileError(
                f"the token file lists bands {hd.get('bands')}, the model decodes {self.bands}; the header was "
                "edited or the file belongs to another model"
            )
        h, w = int(hd["height"]), int(hd["width"])
        if gh * f < h or gw * f < w:
            raise TokenFileError(f"an index grid of {gh}x{gw} cannot decode to {h}x{w} px at downsampling {f}")
        refl = np.zeros((len(self.bands), gh * f, gw * f), np.float32)

        def take(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return idx[:, r0:r1, c0:c1]

        def model(batch: np.ndarray) -> np.ndarray:
            return np.asarray(self.tokenizer.decode(np.ascontiguousarray(batch)), dtype=np.float32)

        if self.blend and self.halo > 0:
            weights = np.zeros(refl.shape[1:], np.float32)
            self._run_tiled((gh, gw), take, model, f, refl, progress, weights)
            refl /= np.maximum(weights, 1e-6)
        else:
            self._run_tiled((gh, gw), take, model, f, refl, progress)
        dn = refl[:, :h, :w] * np.float32(QUANTIFICATION_VALUE) + np.float32(hd.get("offset", 0))
        out = np.clip(np.round(dn), 1, 65535).astype(np.uint16)  # 0 is reserved for nodata
        if token_file.valid is not None:
            valid = token_file.valid
            out[np.broadcast_to(~valid, out.shape)] = 0
        self.last_timings["decode_s"] = time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ scenes and files
    def encode_scene(self, scene: Any, progress: Progress | None = None) -> TokenFile:
        """Encode an ``eocompress.imagery.readers.scenes.Scene`` (warns when it has no georeference)."""
        if scene.crs is None or scene.transform is None or _is_identity(scene.transform):
            warnings.warn(
                f"{scene.meta.get('source', 'the scene')} has no georeference (CRS/transform); it is encoded "
                "anyway and the decoded GeoTIFF will have none either",
                stacklevel=2,
            )
        transform = None if scene.transform is None or _is_identity(scene.transform) else scene.transform
        return self.encode_array(
            scene.data, scene.bands, scene.offset, scene.crs, transform, scene.meta, progress
        )

    def encode_file(
        self, src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False,
        progress: Progress | None = None,
    ) -> TokenFile:
        """Read a scene (Major-TOM folder or multi-band GeoTIFF), encode it and write ``dst`` atomically."""
        from rasterio.errors import NotGeoreferencedWarning

        from eocompress.imagery.readers.scenes import read_scene

        with warnings.catch_warnings():  # encode_scene says it once, in its own words
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            scene = read_scene(src)
        token_file = self.encode_scene(scene, progress)
        token_file.save(dst, overwrite=overwrite)
        return token_file

    def decode_file(
        self, src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False,
        progress: Progress | None = None,
    ) -> Path:
        """Decode the token file ``src`` to a uint16 GeoTIFF ``dst`` (original georeference, size, bands)."""
        token_file = TokenFile.load(src)
        data = self.decode_array(token_file, progress)
        return write_geotiff(dst, data, token_file.header, overwrite=overwrite)


def _crs_text(crs: Any) -> str | None:
    """``EPSG:n`` when that code denotes exactly this CRS (a few bytes), else the full WKT."""
    if crs is None:
        return None
    from rasterio.crs import CRS

    code = crs.to_epsg()
    if code is not None and CRS.from_epsg(code) == crs:
        return f"EPSG:{code}"
    return crs.to_wkt()


def _is_identity(transform: Any) -> bool:
    return tuple(transform)[:6] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def offset_tags(header: dict[str, Any]) -> dict[str, str]:
    """The DN-offset tags of a decoded file, only when the offset is known (ESA sign: -1000 for +1000 DN).

    Level-2A: ``BOA_ADD_OFFSET``; Level-1C: ``RADIO_ADD_OFFSET``; always ``eocompress_dn_offset`` (the DN
    offset the values carry, >= 0) so a file of unknown level still says it. Unknown offset: no tag.
    """
    offset = int(header.get("offset", 0) or 0)
    if not header.get("offset_known", offset != 0):
        return {}
    tags = {"eocompress_dn_offset": str(offset)}
    level = header.get("processing_level")
    if level == "Level-2A":
        tags["BOA_ADD_OFFSET"] = str(-offset)
    elif level == "Level-1C":
        tags["RADIO_ADD_OFFSET"] = str(-offset)
    return tags


def write_geotiff(
    path: str | os.PathLike, data: np.ndarray, header: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write a decoded (C, H, W) uint16 stack as a Cloud-Optimized GeoTIFF with the header's georeference.

    GDAL's COG driver: 256 px tiles, DEFLATE + predictor 2, overviews (average), nodata 0; band
    descriptions are the band names; tags carry the DN offset, the model id and the product keys and
    ``LAYOUT=COG``. The file is built beside ``path`` under a temporary name, read back and compared
    with ``data`` (a full disk or any GDAL write error ends in one line, no partial file, and the old
    file kept), then renamed into place. An existing ``path`` is replaced only with ``overwrite``.
    """
    data = np.asarray(data)
    c, h, w = data.shape
    return write_geotiff_windows(path, (c, h, w), header, iter([((0, 0, h, w), data)]), overwrite=overwrite)


def geotiff_tags(header: dict[str, Any]) -> dict[str, str]:
    """The tags of a decoded file: the product keys, the model id, the quantification value, the DN offset."""
    tags = {k: str(header[k]) for k in META_KEYS if header.get(k) is not None}
    tags.update(eocompress_model_id=str(header.get("model_id", "")),
                QUANTIFICATION_VALUE=str(header.get("quantification_value", QUANTIFICATION_VALUE)))
    tags.update(offset_tags(header))
    return tags


def write_geotiff_windows(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    header: dict[str, Any],
    windows: Iterator[tuple[tuple[int, int, int, int], np.ndarray]],
    overwrite: bool = False,
) -> Path:
    """Write uint16 (row, col, height, width) windows of a (C, H, W) scene as a COG, never holding the scene.

    Through the one shared writer, :func:`eocompress.geotiff.write_cog`: a tiled DEFLATE work file,
    GDAL's COG driver (256 px tiles, DEFLATE + predictor 2, average overviews, nodata 0, band names and
    tags as :func:`write_geotiff`), every window read back against its sha256, and only then the rename
    into place: an error leaves no partial file. Memory stays bounded whatever the scene size.
    """
    c = int(shape[0])
    return write_cog(
        path,
        shape,
        ((PixelWindow(r, col, wh, ww), block) for (r, col, wh, ww), block in windows),
        dtype="uint16",
        nodata=0,
        crs=header.get("crs") or None,
        transform=header.get("transform") or None,
        band_names=list(header.get("bands") or [f"band_{i + 1}" for i in range(c)]),
        tags=geotiff_tags(header),
        resampling="average",
        predictor=2,
        compress_work=True,
        overwrite=overwrite,
    )
