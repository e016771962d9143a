"""The learned imagery codec: scenes -> integer tokens -> range-coded bytes with a compact header.

``LearnedCodec.load("default").encode(dn, ratio=450)`` standardises the scene with its own band
means and scale (side information in the header), runs the factorized-prior tokenizer, quantises the
latent with the step that meets the requested size, and range-codes every channel's tokens with the
model's learned prior through ``constriction``. ``decode`` inverts it bit-exactly up to the model.

Numbers in = numbers out: the band means are those of the input DNs, so ``decode`` returns the
input's DN convention (a +1000 offset stays in; only the uint16 range and the nodata value 0 bound
it). The DN offset and the processing level are metadata only (the standardisation cancels any
offset): they tag the decoded GeoTIFF and tell the metrics how to reach reflectance. A band that is
constant over the scene (a dead band) is stored as its value and restored exactly; the network codes
the others.

File layout (little-endian), 48 bytes + georeference (~36 bytes) + payload + CRC32::

    magic "EOT2" | version u8 (2) | flags u8 | model id 4 B | height u32 | width u32 | delta f32 |
    scale u16 | 12 band means u16 | offset u16 | offset known + level u8 |
    [constant bands: count u8 + count x (band u8, value u16)] | [epsg u32 | transform 4 x f64] |
    [mask: u32 length + zlib] | payload (range-coded tokens, channel-major) | crc32 of everything before

Version 1 files (no offset fields; their means had the offset removed) still decode as they did:
reflectance x 10000 without the offset, the offset they dropped unknown.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from eocompress.errors import FileFormatError, InputError

MAGIC = b"EOT2"
VERSION = 2
#: Versions this code reads (1: before the offset fields; decoded without the offset, as then).
READABLE_VERSIONS = (1, 2)
_F_GEO, _F_MASK, _F_AFFINE6, _F_WKT, _F_CONST = 1, 2, 4, 8, 16
#: Processing level codes in the header (bits 1-2 of the offset byte).
LEVELS = {0: None, 1: "Level-1C", 2: "Level-2A"}
#: Largest grid side and pixel count a header may claim (a full 10980 px tile is far inside): checked
#: before anything is allocated, then the memory the decode needs is compared with what is free.
MAX_SIDE, MAX_PIXELS = 1 << 17, 1 << 31
#: Tail mass left outside a channel's coded alphabet (those rare tokens are clipped to its ends).
TAIL = 1e-7
#: Most symbols one channel's alphabet may have.
MAX_SYMBOLS = 4096
#: The --quality ladder: quality q in 1..10 uses delta = DELTA_HI * (DELTA_LO / DELTA_HI) ** ((q - 1) / 9).
QUALITY_LEVELS = 10
#: Latent positions per block edge when a scene is transformed in pieces (64 = 1024 px) and the halo
#: (latent positions) that covers the receptive field, so pieces give exactly the one-pass result.
BLOCK, HALO = 64, 6


class TokenStreamError(FileFormatError):
    """A learned token file that is damaged, truncated or made by another model."""


@dataclass
class Header:
    """Everything decoding and georeferencing need, besides the model itself."""

    height: int
    width: int
    delta: float
    scale: int
    means: np.ndarray  # uint16 (C,)
    model_id: bytes
    epsg: int | None = None
    wkt: str | None = None
    transform: tuple[float, ...] | None = None
    valid: np.ndarray | None = None
    offset: int = 0  # DN offset present in the input (and in the decoded values)
    offset_known: bool = False  # False: no metadata and no --offset said it (0 assumed, values unchanged)
    level: str | None = None  # "Level-1C" / "Level-2A" when known: picks the GeoTIFF offset tag
    constants: dict[int, int] | None = None  # band index -> value of bands constant over the scene
    version: int = VERSION

    def to_bytes(self) -> bytes:
        """The header as written by this version (always the newest format)."""
        flags = 0
        const = b""
        if self.constants:
            flags |= _F_CONST
            const = struct.pack("<B", len(self.constants))
            const += b"".join(struct.pack("<BH", b, v) for b, v in sorted(self.constants.items()))
        geo = b""
        if self.transform is not None and (self.epsg is not None or self.wkt is not None):
            flags |= _F_GEO
            a, b, c, d, e, f = self.transform[:6]
            if self.wkt is not None:
                flags |= _F_WKT
                w = zlib.compress(self.wkt.encode(), 9)
                geo += struct.pack("<H", len(w)) + w
            else:
                geo += struct.pack("<I", self.epsg)
            if b == 0 and d == 0:
                geo += struct.pack("<4d", a, c, e, f)
            else:
                flags |= _F_AFFINE6
                geo += struct.pack("<6d", a, b, c, d, e, f)
        mask = b""
        if self.valid is not None and not self.valid.all():
            flags |= _F_MASK
            packed = zlib.compress(np.packbits(self.valid.astype(bool)).tobytes(), 9)
            mask = struct.pack("<I", len(packed)) + packed
        head = MAGIC + struct.pack("<BB", VERSION, flags) + self.model_id[:4]
        head += struct.pack("<IIfH", self.height, self.width, self.delta, self.scale)
        head += self.means.astype("<u2").tobytes()
        level = {v: k for k, v in LEVELS.items()}.get(self.level, 0)
        head += struct.pack("<HB", int(self.offset), int(bool(self.offset_known)) | level << 1)
        return head + const + geo + mask

    @classmethod
    def from_bytes(cls, data: bytes, bands: int, source: str) -> tuple[Header, int]:
        """Parse a header; returns it and the offset where the payload starts."""
        try:
            if data[:4] != MAGIC:
                raise TokenStreamError(f"{source} is not a learned token file (magic {data[:4]!r}, expected {MAGIC!r})")
            version, flags = struct.unpack_from("<BB", data, 4)
            if version not in READABLE_VERSIONS:
                raise TokenStreamError(
                    f"{source} has format version {version}; this eocompress reads versions "
                    f"{', '.join(map(str, READABLE_VERSIONS))}: update eocompress to decode it"
                )
            model_id = bytes(data[6:10])
            h, w, delta, scale = struct.unpack_from("<IIfH", data, 10)
            if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE and h * w <= MAX_PIXELS):
                raise TokenStreamError(
                    f"{source}: header claims {h} x {w} pixels, beyond the {MAX_SIDE} px per side this format "
                    "allows: the file is forged or damaged; re-encode the scene"
                )
            pos = 24
            means = np.frombuffer(data, "<u2", bands, pos).astype(np.uint16)
            pos += 2 * bands
            offset, offset_known, level, constants = 0, False, None, None
            if version >= 2:
                offset, info = struct.unpack_from("<HB", data, pos)
                pos += 3
                offset_known, level = bool(info & 1), LEVELS.get(info >> 1 & 3)
                if info >> 3:
                    raise TokenStreamError(f"{source}: header has unknown offset bits ({info:#x})")
            if flags & _F_CONST:
                (n,) = struct.unpack_from("<B", data, pos)
                constants = {}
                for i in range(n):
                    b, v = struct.unpack_from("<BH", data, pos + 1 + 3 * i)
                    if b >= bands:
                        raise TokenStreamError(f"{source}: header names constant band {b} of {bands}")
                    constants[b] = v
                pos += 1 + 3 * n
            epsg = wkt = transform = None
            if flags & _F_GEO:
                if flags & _F_WKT:
                    (n,) = struct.unpack_from("<H", data, pos)
                    wkt = zlib.decompress(data[pos + 2 : pos + 2 + n]).decode()
                    pos += 2 + n
                else:
                    (epsg,) = struct.unpack_from("<I", data, pos)
                    pos += 4
                if flags & _F_AFFINE6:
                    transform = struct.unpack_from("<6d", data, pos)
                    pos += 48
                else:
                    a, c, e, f = struct.unpack_from("<4d", data, pos)
                    transform = (a, 0.0, c, 0.0, e, f)
                    pos += 32
            valid = None
            if flags & _F_MASK:
                (n,) = struct.unpack_from("<I", data, pos)
                # at most the grid's bytes are inflated, whatever the stream claims
                packed = zlib.decompressobj().decompress(data[pos + 4 : pos + 4 + n], -(-h * w // 8))
                bits = np.unpackbits(np.frombuffer(packed, np.uint8))
                if bits.size < h * w:
                    raise TokenStreamError(f"{source}: nodata mask is shorter than the {h}x{w} grid")
                valid = bits[: h * w].reshape(h, w).astype(bool)
                pos += 4 + n
        except (struct.error, zlib.error, ValueError, UnicodeDecodeError) as exc:
            raise TokenStreamError(f"{source}: header is damaged or truncated ({exc})") from exc
        if not (math.isfinite(delta) and delta > 0) or scale == 0:
            raise TokenStreamError(f"{source}: header holds impossible values ({h}x{w}, step {delta}, scale {scale})")
        return cls(h, w, float(delta), int(scale), means, model_id, epsg, wkt, transform, valid, int(offset),
                   offset_known, level, constants, version), pos


def is_learned_token_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with this format's magic (as opposed to the VQ ``.eotok`` format)."""
    with open(path, "rb") as fh:
        return fh.read(4) == MAGIC


def default_model_dir() -> Path:
    """The learned model shipped inside the package."""
    return Path(str(resources.files("eocompress").joinpath("models", "learned")))


class LearnedCodec:
    """Encode/decode uint16 Sentinel-2 arrays (C, H, W) with the factorized-prior tokenizer."""

    def __init__(self, model: Any, cfg: Any, model_id: bytes, path: Path | None = None) -> None:
        self.model = model.eval()
        self.config = cfg
        self.model_id = model_id
        self.path = path
        self._tables: dict[float, list[tuple[int, np.ndarray]]] = {}
        #: One line per thing the last ``encode`` changed about how a scene is coded (e.g. a dead band).
        self.last_notes: list[str] = []

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", device: str = "cpu") -> LearnedCodec:
        """Load ``"default"`` (packaged) or a model folder (config.json + model.safetensors)."""
        import torch
        from safetensors.torch import load_file

        from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig

        if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
            avail = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            raise InputError(f"device {device!r} is not available here; use one of: {', '.join(avail)}")
        path = default_model_dir() if str(name_or_path) == "default" else Path(name_or_path)
        weights, config = path / "model.safetensors", path / "config.json"
        if not (weights.is_file() and config.is_file()):
            raise FileFormatError(f"{path} is not a learned-codec model folder (needs config.json + model.safetensors)")
        try:
            cfg = FPConfig.from_dict(json.loads(config.read_text()))
            model = FactorizedPriorTokenizer(cfg)
            model.load_state_dict(load_file(str(weights)))
        except Exception as exc:  # damaged weights or a config of another architecture
            raise FileFormatError(f"{path}: cannot load the model ({exc}); re-copy or retrain it") from exc
        model_id = hashlib.sha256(weights.read_bytes()).digest()[:4]
        return cls(model.to(device), cfg, model_id, path)

    @property
    def bands(self) -> list[str]:
        return list(self.config.bands)

    # ---------------------------------------------------------------- entropy model
    def _channel_tables(self, delta: float) -> list[tuple[int, np.ndarray]]:
        """Per channel: (lowest token, probabilities of every token in the alphabet) at step ``delta``."""
        key = round(float(delta), 9)
        if key in self._tables:
            return self._tables[key]
        p = self.model.prior
        w = np.exp(p.logits.detach().double().numpy())
        w /= w.sum(1, keepdims=True)
        mu = p.means.detach().double().numpy()
        s = np.exp(p.log_scales.detach().double().numpy())

        def cdf(x: np.ndarray, c: int) -> np.ndarray:
            return (w[c] * expit((x[:, None] - mu[c]) / s[c])).sum(1)

        tables = []
        for c in range(mu.shape[0]):
            lo_v = (mu[c] - 40 * s[c]).min()
            hi_v = (mu[c] + 40 * s[c]).max()
            k = np.arange(math.floor(lo_v / delta), math.ceil(hi_v / delta) + 1)
            if k.size > MAX_SYMBOLS:  # keep the alphabet bounded around the mass
                k = k[(k.size - MAX_SYMBOLS) // 2 :][:MAX_SYMBOLS]
            upper, lower = cdf((k + 0.5) * delta, c), cdf((k - 0.5) * delta, c)
            keep = np.nonzero((upper > TAIL) & (lower < 1 - TAIL))[0]
            k = k[keep.min() : keep.max() + 1] if keep.size else k[k.size // 2 : k.size // 2 + 1]
            if k.size < 2:  # the coder needs an alphabet of two symbols at least
                k = np.array([k[0], k[0] + 1])
            upper, lower = cdf((k + 0.5) * delta, c), cdf((k - 0.5) * delta, c)
            upper[-1], lower[0] = 1.0, 0.0  # tails folded into the end symbols
            tables.append((int(k[0]), np.maximum(upper - lower, 1e-12)))
        self._tables[key] = tables
        return tables

    def _code(self, tokens: np.ndarray, delta: float, head: bytes) -> bytes:
        import constriction

        enc = constriction.stream.queue.RangeEncoder()
        # a 16-bit digest of the header inside the coded stream ties every header field to the payload:
        # a header edited with its CRC recomputed no longer matches the stream and is refused
        enc.encode(_digest(head), constriction.stream.model.Categorical(np.ones(256), perfect=False))
        for c, (lo, probs) in enumerate(self._channel_tables(delta)):
            sym = np.clip(tokens[c].ravel() - lo, 0, probs.size - 1).astype(np.int32)
            enc.encode(sym, constriction.stream.model.Categorical(probs, perfect=False))
        return enc.get_compressed().astype("<u4").tobytes()

    def _uncode(self, payload: bytes, shape: tuple[int, int], delta: float, source: str, head: bytes) -> np.ndarray:
        import constriction

        if len(payload) % 4 or not payload:
            raise TokenStreamError(f"{source}: payload length {len(payload)} is not a multiple of 4 (truncated?)")
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        n = shape[0] * shape[1]
        out = []
        try:
            digest = dec.decode(constriction.stream.model.Categorical(np.ones(256), perfect=False), 2)
            if not np.array_equal(digest, _digest(head)):
                raise TokenStreamError(f"{source}: the header does not match its token payload (edited or forged)")
            for lo, probs in self._channel_tables(delta):
                out.append(dec.decode(constriction.stream.model.Categorical(probs, perfect=False), n) + lo)
        except TokenStreamError:
            raise
        except Exception as exc:
            raise TokenStreamError(f"{source}: token payload is damaged ({exc})") from exc
        return np.stack(out).reshape(-1, *shape).astype(np.int32)

    # ---------------------------------------------------------------- transforms
    def _standardise(
        self, dn: np.ndarray, valid: np.ndarray, live: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(dn - band means) / scale over the valid pixels; the scale from the ``live`` (non-constant) bands."""
        from eocompress.imagery.tokenizer.fp_data import MIN_SCALE

        pix = dn.reshape(dn.shape[0], -1)[:, valid.ravel()] if valid.any() else dn.reshape(dn.shape[0], -1)
        means = np.clip(np.rint(pix.mean(1)), 0, 65535).astype(np.uint16)
        stds = pix.std(1)[live] if live else pix.std(1)
        scale = int(np.clip(np.rint(max(stds.mean(), MIN_SCALE)), 1, 65535))
        x = (dn - means[:, None, None].astype(np.float32)) / np.float32(scale)
        x[:, ~valid] = 0.0  # nodata sits at the band means: costs nothing, restored as 0
        return x.astype(np.float32), means, scale

    def _latent(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """Analysis transform of a standardised (C, H, W) array, in blocks for large scenes.

        The network has no global statistics (GDN is local), so blocks computed with a halo wider than
        the receptive field give the same latent as one pass, in bounded memory.
        """
        import torch

        f = 16
        h, w = x.shape[1:]
        xp = np.pad(x, ((0, 0), (0, -h % f), (0, -w % f)), mode="edge")
        lh, lw = xp.shape[1] // f, xp.shape[2] // f

        def run(block: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return self.model.analysis(torch.from_numpy(np.ascontiguousarray(block))[None])[0].numpy()

        if lh * lw <= BLOCK * BLOCK:
            y = run(xp)
            return y, y.shape[1:]
        y = np.empty((self.config.latent, lh, lw), np.float32)
        for r0, r1, c0, c1, (a, b, c, d) in _blocks(lh, lw):
            block = run(xp[:, a * f : b * f, c * f : d * f])
            y[:, r0:r1, c0:c1] = block[:, r0 - a : r1 - a, c0 - c : c1 - c]
        return y, y.shape[1:]

    def _synthesise(self, tokens: np.ndarray, delta: float, h: int, w: int) -> np.ndarray:
        """Synthesis transform of integer tokens, in blocks for large scenes (same result as one pass)."""
        import torch

        f = 16
        lat = tokens.astype(np.float32) * np.float32(delta)

        def run(block: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return self.model.synthesis(torch.from_numpy(np.ascontiguousarray(block))[None])[0].numpy()

        lh, lw = lat.shape[1:]
        if lh * lw <= BLOCK * BLOCK:
            return run(lat)[:, :h, :w]
        out = np.empty((len(self.bands), lh * f, lw * f), np.float32)
        for r0, r1, c0, c1, (a, b, c, d) in _blocks(lh, lw):
            block = run(lat[:, a:b, c:d])
            rows, cols = slice((r0 - a) * f, (r1 - a) * f), slice((c0 - c) * f, (c1 - c) * f)
            out[:, r0 * f : r1 * f, c0 * f : c1 * f] = block[:, rows, cols]
        return out[:, :h, :w]

    # ---------------------------------------------------------------- public API
    def delta_for_quality(self, quality: int) -> float:
        """Quantisation step of ladder level ``quality`` (1 = smallest files … 10 = best fidelity)."""
        if not 1 <= int(quality) <= QUALITY_LEVELS:
            raise InputError(f"quality must be 1..{QUALITY_LEVELS}, got {quality}")
        hi, lo = self.config.delta_max, self.config.delta_min
        return float(hi * (lo / hi) ** ((int(quality) - 1) / (QUALITY_LEVELS - 1)))

    def encode(
        self,
        dn: np.ndarray,
        *,
        offset: int | None = None,
        ratio: float | None = None,
        quality: int | None = None,
        valid: np.ndarray | None = None,
        crs: Any = None,
        transform: Any = None,
        level: str | None = None,
    ) -> bytes:
        """Bytes of one token file for ``dn`` (C, H, W) in the model's band order.

        ``ratio``: the whole file is at most raw uint16 size / ratio (the step is searched);
        ``quality``: a fixed ladder level 1..10. Decoding gives back ``dn``'s own DN convention.
        ``offset`` (e.g. 1000) is the DN offset ``dn`` carries, recorded for the GeoTIFF tag and the
        metrics (None: unknown, recorded as 0 unknown); it never changes the coded values. ``level``:
        ``"Level-1C"``/``"Level-2A"`` when known. ``valid``: False at nodata pixels (default: a 0 in
        any non-constant band). Bands constant over the scene are stored exactly (see ``last_notes``).
        """
        if (ratio is None) == (quality is None):
            raise InputError("give exactly one of ratio= or quality=")
        dn = np.asarray(dn)
        if dn.ndim != 3 or dn.shape[0] != len(self.bands):
            raise InputError(f"expected ({len(self.bands)}, H, W) bands {', '.join(self.bands)}; got shape {dn.shape}")
        if min(dn.shape[1:]) < 1:
            raise InputError(f"empty scene {dn.shape}")
        if dn.dtype.kind not in "ui" or (dn.size and (int(dn.min()) < 0 or int(dn.max()) > 65535)):
            raise InputError(f"Sentinel-2 DNs must be integers in 0..65535 (uint16); got {dn.dtype} values")
        if offset is not None and not 0 <= int(offset) <= 65535:
            raise InputError(f"offset must be 0..65535 DN, got {offset}; use 1000 for baseline >= 04.00, else 0")
        if level not in (None, *LEVELS.values()):
            raise InputError(f"level must be Level-1C or Level-2A, got {level!r}")
        constants, live = _constant_bands(dn)
        self.last_notes = [
            f"band {self.bands[b]} is constant ({v} DN) over the scene (a dead band?): stored exactly, "
            f"the other {len(live)} bands coded" for b, v in sorted(constants.items())
        ]
        if valid is None:
            valid = np.all(dn[live] != 0, axis=0) if live else np.any(dn != 0, axis=0)
        x = dn.astype(np.float32)
        x[list(constants)] = 0.0  # constants are side information: the network sees a flat plane
        z, means, scale = self._standardise(x, valid, live)
        z[list(constants)] = 0.0
        y, _ = self._latent(z)
        head = Header(dn.shape[1], dn.shape[2], 1.0, scale, means, self.model_id, valid=valid,
                      offset=int(offset or 0), offset_known=offset is not None, level=level,
                      constants=constants or None, **_georef(crs, transform))

        def build(delta: float) -> bytes:
            head.delta = float(np.float32(delta))
            tokens = np.rint(y / head.delta).astype(np.int32)
            head_bytes = head.to_bytes()
            body = head_bytes + self._code(tokens, head.delta, head_bytes)
            return body + struct.pack("<I", zlib.crc32(body))

        if quality is not None:
            return build(self.delta_for_quality(quality))
        if not (ratio and math.isfinite(ratio) and ratio > 1):
            raise InputError(f"ratio must be a number > 1 (e.g. 450), got {ratio}")
        budget = dn.shape[0] * dn.shape[1] * dn.shape[2] * 2 / ratio
        lo, hi = math.log(self.config.delta_min / 4), math.log(self.config.delta_max * 64)
        best = build(math.exp(hi))
        if len(best) > budget:
            best_ratio = math.floor(dn.size * 2 / len(best) * 10) / 10  # rounded down: reachable
            fix = (
                f"ask for --ratio {best_ratio:g} or less" if best_ratio > 1 else
                f"the raw scene ({dn.size * 2:,} B) is no larger than that, so encode a larger scene "
                "(64x64 pixels or more) or keep this one as it is"
            )
            raise InputError(
                f"{ratio:g}x cannot be reached for a {dn.shape[1]}x{dn.shape[2]} scene: the smallest file is "
                f"{len(best)} bytes (header {len(head.to_bytes())} B); {fix}"
            )
        for _ in range(18):  # bisection on log(step): size falls monotonically with the step
            mid = (lo + hi) / 2
            blob = build(math.exp(mid))
            if len(blob) <= budget:
                best, hi = blob, mid
            else:
                lo = mid
        return best

    def read_header(self, blob: bytes, source: str = "token file") -> tuple[Header, int]:
        """Check the CRC, model and sizes, parse the header; returns it and the payload start.

        The grid it claims is bounded and the memory a decode needs is compared with what is free
        before anything is allocated: a forged or damaged size is one line, not an out-of-memory abort.
        """
        if len(blob) < 30:
            raise TokenStreamError(f"{source} is truncated ({len(blob)} bytes)")
        body, (crc,) = blob[:-4], struct.unpack("<I", blob[-4:])
        if zlib.crc32(body) != crc:
            raise TokenStreamError(f"{source} fails its checksum: the file is damaged or truncated")
        head, pos = Header.from_bytes(body, len(self.bands), source)
        if head.model_id != self.model_id[:4]:
            raise TokenStreamError(
                f"{source} was made by model {head.model_id.hex()}, not this one ({self.model_id.hex()}); "
                "decode it with the model that made it"
            )
        _check_memory(head, len(self.bands), self.config.latent, source)
        return head, pos

    def decode(self, blob: bytes, source: str = "token file") -> np.ndarray:
        """uint16 (C, H, W) in the input's DN convention (offset kept; nodata pixels 0, valid ones >= 1).

        Version-1 files decode as they always did: reflectance x 10000 without the offset they dropped.
        """
        head, pos = self.read_header(blob, source)
        lat = (-(-head.height // 16), -(-head.width // 16))
        tokens = self._uncode(blob[pos:-4], lat, head.delta, source, blob[:pos])
        z = self._synthesise(tokens, head.delta, head.height, head.width)
        x = z * np.float32(head.scale) + head.means[:, None, None].astype(np.float32)
        out = np.clip(np.rint(x), 1, 65535).astype(np.uint16)  # 0 stays the nodata value
        for band, value in (head.constants or {}).items():
            out[band] = value
        if head.valid is not None:
            out[:, ~head.valid] = 0
        return out

    # ---------------------------------------------------------------- scenes and files
    def encode_scene(self, scene: Any, *, ratio: float | None = None, quality: int | None = None) -> bytes:
        """Token-file bytes of a :class:`~eocompress.imagery.readers.scenes.Scene` (its model bands, DNs as read).

        Nodata is where the DNs are 0 (the product's cloud mask is not nodata: cloudy pixels are coded).
        The scene's offset is recorded only when it came from metadata or was given.
        """
        missing = [b for b in self.bands if b not in scene.bands]
        if missing:
            raise InputError(
                f"the scene lacks band(s) {', '.join(missing)}; the codec needs {', '.join(self.bands)} "
                f"(it has {', '.join(scene.bands) or 'none'})"
            )
        sel = scene.select(self.bands)
        known = scene.meta.get("offset_known", True)
        level = scene.meta.get("processing_level")
        return self.encode(sel.data, offset=int(scene.offset) if known else None, ratio=ratio, quality=quality,
                           crs=scene.crs, transform=scene.transform,
                           level=level if level in LEVELS.values() else None)

    def save(self, blob: bytes, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write token-file bytes atomically; an existing file is replaced only with ``overwrite``."""
        from eocompress._atomic import atomic_path

        path = Path(path)
        with atomic_path(path, overwrite=overwrite) as tmp:
            Path(tmp).write_bytes(blob)
        return path

    def decode_file(self, path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode a token file: uint16 (C, H, W) and the header fields a GeoTIFF writer needs.

        ``offset``/``offset_known``/``processing_level`` pick the offset tag; ``constant_bands`` names
        the bands stored as one value; ``format_version`` 1 files carry no offset (see :meth:`decode`).
        """
        path = Path(path)
        blob = path.read_bytes()
        data = self.decode(blob, source=str(path))
        head, _ = self.read_header(blob, str(path))
        return data, self.header_meta(head)

    def header_meta(self, head: Header) -> dict[str, Any]:
        """The metadata of a parsed header as a GeoTIFF writer and ``imagery info`` want it."""
        crs = f"EPSG:{head.epsg}" if head.epsg else head.wkt
        return {"crs": crs, "transform": head.transform, "bands": self.bands, "offset": head.offset,
                "offset_known": head.offset_known, "processing_level": head.level,
                "constant_bands": {self.bands[b]: v for b, v in sorted((head.constants or {}).items())},
                "format_version": head.version, "model_id": self.model_id.hex(), "height": head.height,
                "width": head.width}

    def fixed_length_bytes(self, blob: bytes) -> int:
        """Payload size the same tokens would take as fixed-length indices (ceil(log2 alphabet) bits each).

        The saving of the learned prior + range coder is measured against this.
        """
        head, _ = self.read_header(blob)
        positions = -(-head.height // 16) * -(-head.width // 16)
        bits = sum(math.ceil(math.log2(p.size)) for _, p in self._channel_tables(head.delta))
        return -(-bits * positions // 8)

    def tokens(self, blob: bytes, source: str = "token file") -> np.ndarray:
        """The integer tokens (M, H/16, W/16) of a file: FSQ-style codebook indices per channel."""
        head, pos = self.read_header(blob, source)
        lat = (-(-head.height // 16), -(-head.width // 16))
        return self._uncode(blob[pos:-4], lat, head.delta, source, blob[:pos])


def _constant_bands(dn: np.ndarray) -> tuple[dict[int, int], list[int]]:
    """Bands constant over the pixels that hold data ({band: value}) and the indices of the others."""
    has_data = np.any(dn != 0, axis=0)
    if not has_data.any():
        has_data = np.ones(dn.shape[1:], bool)
    constants = {}
    for b in range(dn.shape[0]):
        vals = dn[b][has_data]
        lo = int(vals.min())
        if lo == int(vals.max()):
            constants[b] = lo
    return constants, [b for b in range(dn.shape[0]) if b not in constants]


def _check_memory(head: Header, bands: int, latent: int, source: str) -> None:
    """Refuse a decode whose arrays would not fit in the free memory (a forged or damaged size, or a too-small host)."""
    import psutil

    positions = -(-head.height // 16) * -(-head.width // 16)
    need = positions * latent * 16 + positions * 256 * bands * 14  # tokens + latent; float32 planes + uint16 out
    free = psutil.virtual_memory().available
    if need > free:
        raise TokenStreamError(
            f"{source}: decoding its {head.height} x {head.width} pixels needs about {need / 1e9:.1f} GB of memory, "
            f"{free / 1e9:.1f} GB is free: decode it on a larger machine (or the header is forged)"
        )


def _digest(head: bytes) -> np.ndarray:
    """Two bytes of the header's CRC32 as symbols (0..255) for the coded stream."""
    crc = zlib.crc32(head)
    return np.array([crc & 0xFF, (crc >> 8) & 0xFF], dtype=np.int32)


def _blocks(lh: int, lw: int):
    """Latent blocks (r0, r1, c0, c1) of at most BLOCK positions and the haloed window (a, b, c, d) to run."""
    for r0 in range(0, lh, BLOCK):
        for c0 in range(0, lw, BLOCK):
            r1, c1 = min(r0 + BLOCK, lh), min(c0 + BLOCK, lw)
            yield r0, r1, c0, c1, (max(0, r0 - HALO), min(lh, r1 + HALO), max(0, c0 - HALO), min(lw, c1 + HALO))


def _georef(crs: Any, transform: Any) -> dict[str, Any]:
    """Header georeference fields from a rasterio CRS and affine transform (EPSG code when there is one)."""
    if crs is None or transform is None:
        return {}
    t = tuple(float(v) for v in tuple(transform)[:6])
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    if epsg:
        return {"epsg": int(epsg), "transform": t}
    return {"wkt": crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs), "transform": t}
