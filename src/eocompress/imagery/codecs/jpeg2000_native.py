"""JPEG 2000 per band at native resolution: how ESA ships Sentinel-2 products, as an anchor.

Each band is brought back to its native grid (10 m: B02, B03, B04, B08; 20 m: B05, B06, B07, B8A, B11, B12;
60 m: B01, B09) by the **block mean** of the 10 m grid (2 x 2 or 6 x 6 pixels; a partial block at the right
or bottom edge averages the pixels it has), as ESA's 20/60 m pixels cover 2 x 2 / 6 x 6 10 m pixels, and
coded **alone** as a single-component JPEG 2000 codestream (OpenJPEG, same settings as the ``jpeg2000``
anchor). The budget is split across bands in proportion to their native raw size (one compression ratio
for every band, as a product made at a fixed ratio is), except that a band always gets at least its
smallest codestream (a 60 m band's share is too small for one at high ratios). Fidelity of this anchor
is measured at native resolution (:func:`native_psnr_sam`); :meth:`Jpeg2000NativeCodec.decode` replicates
the native pixels onto the 10 m grid so that it answers the one codec interface. Side information
(counted in the size): the 10 m grid size and each band's codestream length.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.base import DEFAULT_BANDS, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.evaluation.fidelity import psnr_from_mse, reflectance_dn, spectral_angle_deg
from eocompress.imagery.readers.bands import RESOLUTION_M
from eocompress.imagery.readers.scenes import Scene


def factor(band: str) -> int:
    """How many 10 m pixels a native pixel of ``band`` spans along each axis (1, 2 or 6)."""
    return RESOLUTION_M[band] // 10


def block_mean(plane: np.ndarray, k: int) -> np.ndarray:
    """float64 mean of ``k`` x ``k`` blocks of a 2-D plane (a partial edge block: mean of the pixels it has)."""
    plane = np.asarray(plane, dtype=np.float64)
    if k == 1:
        return plane
    h, w = plane.shape
    ph, pw = -h % k, -w % k
    total = np.pad(plane, ((0, ph), (0, pw))).reshape((h + ph) // k, k, (w + pw) // k, k).sum(axis=(1, 3))
    count = np.pad(np.ones((h, w)), ((0, ph), (0, pw))).reshape(total.shape[0], k, total.shape[1], k).sum(axis=(1, 3))
    return total / count


def to_native(data: np.ndarray, bands: list[str]) -> list[np.ndarray]:
    """uint16 (C, H, W) on the 10 m grid -> one uint16 plane per band at its native resolution (rounded block mean)."""
    pairs = zip(data, bands, strict=True)
    return [np.clip(np.rint(block_mean(p, factor(b))), 0, 65535).astype(np.uint16) for p, b in pairs]


def from_native(planes: list[np.ndarray], bands: list[str], height: int, width: int) -> np.ndarray:
    """Native planes replicated (nearest) back onto the ``height`` x ``width`` 10 m grid, uint16 (C, H, W)."""
    out = np.empty((len(bands), height, width), dtype=np.uint16)
    for i, (p, b) in enumerate(zip(planes, bands, strict=True)):
        k = factor(b)
        out[i] = np.repeat(np.repeat(p, k, axis=0), k, axis=1)[:height, :width]
    return out


def native_raw_bytes(bands: list[str], height: int, width: int) -> int:
    """Raw uint16 bytes of ``bands`` at native resolution (what a product holds before compression)."""
    return sum(2 * -(-height // factor(b)) * -(-width // factor(b)) for b in bands)


def native_psnr_sam(original_dn: np.ndarray, native_planes: list[np.ndarray], bands: list[str], offset: int = 0,
                    valid: np.ndarray | None = None) -> tuple[float, float]:
    """(PSNR dB, SAM °) at native resolution: the reference is the block mean of ``original_dn``'s bands.

    PSNR: per band, the MSE over its valid native pixels (a native pixel is valid when all its 10 m pixels
    are); the 12 MSEs averaged with equal weight (as on the 10 m grid, where every band has H x W pixels),
    data range 10000 on ``clip(DN - offset, 0, 10000)``. SAM: on the 10 m grid with both sides' native
    pixels replicated (each 10 m pixel's spectrum as the product delivers it).
    """
    c, h, w = original_dn.shape
    if len(native_planes) != c or len(bands) != c:
        raise InputError(f"{len(native_planes)} native planes and {len(bands)} band names for a {c}-band original")
    valid = np.ones((h, w), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    ref = to_native(original_dn, bands)
    mses, ref_up, rec_up = [], [], []
    for r, d, b in zip(ref, native_planes, bands, strict=True):
        k = factor(b)
        if d.shape != r.shape:
            raise InputError(f"band {b}: native plane {d.shape}, expected {r.shape}; decode the same scene")
        ok = block_mean(valid, k) == 1.0
        if ok.any():
            rr, dd = reflectance_dn(r, offset), reflectance_dn(d, offset)
            mses.append(float(np.mean((rr[ok] - dd[ok]) ** 2)))
        ref_up.append(r)
        rec_up.append(d)
    if not mses:
        raise InputError("no valid pixel to measure at native resolution: the scene is all nodata; pick another")
    psnr = float(psnr_from_mse(float(np.mean(mses))))
    sam = spectral_angle_deg(reflectance_dn(from_native(ref_up, bands, h, w), offset),
                             reflectance_dn(from_native(rec_up, bands, h, w), offset), valid)
    return psnr, sam


class Jpeg2000NativeCodec:
    """Every band at its native resolution, coded alone with JPEG 2000 (how ESA ships the products)."""

    name = "jpeg2000-native"

    def __init__(self, bands: list[str] | None = None) -> None:
        self.bands = list(bands or DEFAULT_BANDS)
        self.last_encodes = 0  # encoder runs of the last encode (for per-encode timings)

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """The whole file (header, band lengths, 12 codestreams) not over the target; ratio counts the 10 m grid."""
        scene = select_bands(scene, self.bands, self.name)
        target = target_size(scene, len(self.bands), ratio, target_bytes)
        h, w = scene.shape
        planes = to_native(scene.data, self.bands)
        head = AnchorFile(self.name, scene.offset, scene.crs, scene.transform, side=b"\0" * (8 + 4 * len(planes)))
        left = target - len(head.header())
        raw = [p.nbytes for p in planes]
        stats: dict[str, int] = {}
        streams: dict[int, bytes] = {}
        # Smallest bands first, each given its native-size share of what is left; a band whose smallest
        # codestream is over its share (60 m bands at high ratios) takes more; bytes a band leaves unused
        # go to the bands after it.
        order = sorted(range(len(planes)), key=lambda i: raw[i])
        for n, i in enumerate(order):
            share = int(left * raw[i] / sum(raw[j] for j in order[n:]))
            stream = None
            while stream is None and share <= left:
                stream = j2k_at_size(planes[i][None], share, stats)
                share = int(share * 1.5) + 16
            if stream is None:
                raise InputError(f"{self.name} cannot fit {target} bytes for a {h}x{w} scene (12 band "
                                 "codestreams need more); ask for a larger size")
            streams[i] = stream
            left -= len(stream)
        self.last_encodes = stats.get("encodes", 0)
        ordered = [streams[i] for i in range(len(planes))]
        head.side = struct.pack(f"<II{len(ordered)}I", h, w, *(len(s) for s in ordered))
        head.stream = b"".join(ordered)
        return head.to_bytes()

    def decode_native(self, blob: bytes) -> tuple[list[np.ndarray], dict[str, Any]]:
        """One uint16 plane per band at native resolution and the georeference (of the 10 m grid)."""
        f = AnchorFile.from_bytes(blob, self.name)
        n = len(self.bands)
        if len(f.side) != 8 + 4 * n:
            raise FileFormatError(f"{self.name} side information holds {len(f.side)} bytes, expected {8 + 4 * n} "
                                  f"for {n} bands")
        h, w, *lengths = struct.unpack(f"<II{n}I", f.side)
        if sum(lengths) != len(f.stream):
            raise FileFormatError(f"{self.name} file is truncated: {len(f.stream)} codestream bytes, "
                                  f"the header lists {sum(lengths)}")
        planes, pos = [], 0
        for b, size in zip(self.bands, lengths, strict=True):
            plane = j2k_decode(f.stream[pos : pos + size])[0]
            pos += size
            k = factor(b)
            if plane.shape != (-(-h // k), -(-w // k)):
                raise FileFormatError(f"band {b} decodes to {plane.shape}, expected {(-(-h // k), -(-w // k))}")
            planes.append(plane)
        return planes, f.georef(self.bands, (n, h, w))

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) on the 10 m grid (native pixels replicated) and the georeference."""
        planes, georef = self.decode_native(blob)
        return from_native(planes, self.bands, georef["height"], georef["width"]), georef

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "library": "OpenJPEG (encode through GDAL, decode through imagecodecs)",
                "bands": self.bands, "resolution": "native 10/20/60 m (block mean of the 10 m grid)",
                "components": "one codestream per band", "wavelet": "9/7 irreversible",
                "rate_control": "budget split by native raw size, OpenJPEG rate allocation per band",
                "header": "anchor file: georeference + DN offset + grid size and band lengths (counted)"}


register("jpeg2000-native", Jpeg2000NativeCodec)
