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
the others. A decoded value is 0 exactly where the input's is, band by band: a pixel 0 in some bands
only (a resampled cube's 20/60 m edge) keeps the codec's values in the others.

This module is the façade; each job lives in its own module:

- :mod:`~eocompress.imagery.codec.learned_format`: the token-file header (versions 1 and 2), bounds, CRC;
- :mod:`~eocompress.imagery.codec.learned_entropy`: the prior's token tables and the range coder;
- :mod:`~eocompress.imagery.codec.learned_transforms`: blocked analysis/synthesis on the model's device;
- :mod:`~eocompress.imagery.codec.rate_control`: the quality ladder and the step search for a ratio;
- :mod:`~eocompress.imagery.tokenizer.standardise`: the standardisation training uses too;
- :mod:`~eocompress.imagery.tokenizer.device`: the one ``--device`` check.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file

from eocompress._atomic import atomic_path
from eocompress._blas import single_threaded_blas
from eocompress._strips import strip_map, workers
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codec import rate_control
from eocompress.imagery.codec.latent_refinement import refine_file
from eocompress.imagery.codec.learned_entropy import PriorTables, entropy_model
from eocompress.imagery.codec.learned_format import (
    LEVELS,
    MAGIC,
    READABLE_VERSIONS,
    VERSION,
    BandZeros,
    Header,
    TokenStreamError,
    check_memory,
    georef_fields,
    is_learned_token_file,
    latent_shape,
    seal,
    unseal,
)
from eocompress.imagery.codec.learned_hyperprior import HyperpriorCoder
from eocompress.imagery.codec.learned_transforms import (
    analysis_blocks,
    block_windows,
    model_device,
    synthesis,
    synthesis_blocks,
    synthesis_window,
)
from eocompress.imagery.codec.legacy_tokens import refuse_legacy_token_file
from eocompress.imagery.codec.pipeline import write_geotiff_windows
from eocompress.imagery.codec.rate_control import QUALITY_LEVELS
from eocompress.imagery.readers.bands import band_scaling, source_order
from eocompress.imagery.tokenizer import spectral
from eocompress.imagery.tokenizer.device import check_device
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.fp_quantizers import QUANTIZER_CODES, QUANTIZERS
from eocompress.imagery.tokenizer.standardise import apply_standardise, streamed_stats

__all__ = [
    "LEVELS", "MAGIC", "QUALITY_LEVELS", "READABLE_VERSIONS", "VERSION", "Header", "LearnedCodec",
    "TokenStreamError", "default_model_dir", "is_learned_token_file",
]

#: Pixels in one strip of :meth:`LearnedCodec._dn_values` (about 3 MB of float32 at 12 bands).
DN_STRIP_PIXELS = 1 << 16
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _by_file_model(
    method: Callable[Concatenate[LearnedCodec, bytes, _P], _R],
) -> Callable[Concatenate[LearnedCodec, bytes, _P], _R]:
    """Run a decode-side method on the codec of the model that wrote the token file (its first argument).

    A packaged default hands a file of an earlier release to that release's packaged model
    (:meth:`LearnedCodec.for_file`), so no old token file stops decoding when the default changes.
    """

    @functools.wraps(method)
    def on_file_model(self: LearnedCodec, blob: bytes, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(self.for_file(blob), blob, *args, **kwargs)

    return on_file_model


def default_model_dir() -> Path:
    """The learned model shipped inside the package."""
    return Path(str(resources.files("eocompress").joinpath("models", "learned")))


def packaged_models() -> dict[bytes, Path]:
    """Model id (4 bytes) -> folder of every model the package ships: the default and the defaults before it."""
    out = {}
    for folder in sorted(default_model_dir().parent.iterdir()):
        weights = folder / "model.safetensors"
        if weights.is_file():
            out[hashlib.sha256(weights.read_bytes()).digest()[:4]] = folder
    return out


class LearnedCodec:
    """Encode/decode uint16 Sentinel-2 arrays (C, H, W) with the factorized-prior tokenizer."""

    def __init__(self, model: Any, cfg: Any, model_id: bytes, path: Path | None = None) -> None:
        self.model = model.eval()
        self.config = cfg
        self.model_id = model_id
        self.path = path
        self._entropy: PriorTables | HyperpriorCoder | None = None
        self._siblings: dict[bytes, LearnedCodec] = {}
        #: A model shipped in the package may hand files of an earlier packaged model to that model.
        self._packaged = path is not None and path.resolve().parent == default_model_dir().parent.resolve()
        #: One line per thing the last ``encode`` changed about how a scene is coded (e.g. a dead band).
        self.last_notes: list[str] = []

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", device: str = "cpu") -> LearnedCodec:
        """Load ``"default"`` (packaged) or a model folder (config.json + model.safetensors) onto ``device``."""
        check_device(device)
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
        # channels_last: the convolutions run ~2x faster on CPUs (oneDNN's native layout) and on GPUs
        return cls(model.to(device, memory_format=torch.channels_last), cfg, model_id, path)

    @property
    def bands(self) -> list[str]:
        """The model's band names, in the order ``encode`` expects and ``decode`` returns."""
        return list(self.config.bands)

    @property
    def device(self) -> torch.device:
        """Where the model runs (the arrays in and out are numpy on the CPU wherever it is)."""
        return model_device(self.model)

    @property
    def entropy(self) -> PriorTables | HyperpriorCoder:
        """The prior's token tables and range coder, or the hyperprior's coder (built on first use)."""
        if self._entropy is None:
            self._entropy = HyperpriorCoder(self.model) if self.config.hyperprior else entropy_model(self.model)
        return self._entropy

    def for_model(self, model_id: bytes) -> LearnedCodec:
        """The codec for files of ``model_id``: this one, or, when this is a packaged model, the packaged model
        with that id (so token files of earlier releases keep decoding after the default model changes)."""
        model_id = bytes(model_id[:4])
        if model_id == self.model_id[:4] or not self._packaged:
            return self
        if model_id not in self._siblings:
            folder = packaged_models().get(model_id)
            if folder is None:
                return self  # read_header names the mismatch
            self._siblings[model_id] = LearnedCodec.load(folder, device=str(self.device))
        return self._siblings[model_id]

    def for_file(self, blob: bytes) -> LearnedCodec:
        """:meth:`for_model` of the model id in a token file's header (this codec when it has none)."""
        return self.for_model(bytes(blob[6:10])) if len(blob) >= 10 and blob[:4] == MAGIC else self

    # ---------------------------------------------------------------- public API
    def delta_for_quality(self, quality: int) -> float:
        """Quantisation step of ladder level ``quality`` (1 = smallest files … 10 = best fidelity)."""
        return rate_control.delta_for_quality(quality, self.config.delta_min, self.config.delta_max)

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
        refine_steps: int = 0,
    ) -> bytes:
        """Bytes of one token file for ``dn`` (C, H, W) in the model's band order.

        ``ratio``: the whole file is at most raw uint16 size / ratio (the step is searched);
        ``quality``: a fixed ladder level 1..10. Decoding gives back ``dn``'s own DN convention.
        ``offset`` (e.g. 1000) is the DN offset ``dn`` carries, recorded for the GeoTIFF tag and the
        metrics (None: unknown, recorded as 0 unknown); it never changes the coded values. ``level``:
        ``"Level-1C"``/``"Level-2A"`` when known. ``valid``: False at nodata pixels (default: a 0 in
        any non-constant band). Bands constant over the scene are stored exactly (see ``last_notes``).
        ``refine_steps`` > 0: the latent is refined for this scene (:mod:`latent_refinement`; 0 = as always).
        """
        dn = np.asarray(dn)
        if dn.ndim != 3 or dn.shape[0] != len(self.bands):
            raise InputError(f"expected ({len(self.bands)}, H, W) bands {', '.join(self.bands)}; got shape {dn.shape}")
        return self.encode_windows(lambda r, c, h, w: dn[:, r : r + h, c : c + w], dn.shape, offset=offset,
                                   ratio=ratio, quality=quality, valid=valid, crs=crs, transform=transform,
                                   level=level, refine_steps=refine_steps)

    def encode_windows(
        self,
        read: Callable[[int, int, int, int], np.ndarray],
        shape: tuple[int, int, int],
        *,
        offset: int | None = None,
        ratio: float | None = None,
        quality: int | None = None,
        valid: np.ndarray | None = None,
        crs: Any = None,
        transform: Any = None,
        level: str | None = None,
        refine_steps: int = 0,
    ) -> bytes:
        """:meth:`encode` of a scene handed over by ``read(row, col, height, width)`` -> DNs (C, height, width).

        Streamed: one pass over row strips finds the dead bands, the nodata mask and the exact band
        sums (:func:`~eocompress.imagery.tokenizer.standardise.streamed_stats`); a last one runs the
        analysis block by block. Only the latent (1/256 of the pixels), the mask and one block are held,
        and the bytes are those of :meth:`encode` of the whole array.
        """
        if (ratio is None) == (quality is None):  # before the scan: a wrong call costs nothing
            raise InputError("give exactly one of ratio= or quality=")
        encode_at = self.windows_encoder(read, shape, offset=offset, valid=valid, crs=crs, transform=transform,
                                         level=level, keep_pixels=bool(refine_steps))
        return encode_at(ratio=ratio, quality=quality, refine_steps=refine_steps)

    def windows_encoder(
        self,
        read: Callable[[int, int, int, int], np.ndarray],
        shape: tuple[int, int, int],
        *,
        offset: int | None = None,
        valid: np.ndarray | None = None,
        crs: Any = None,
        transform: Any = None,
        level: str | None = None,
        keep_pixels: bool = False,
        nodata: int = 0,
        band_order: tuple[int, ...] | None = None,
        scaling: tuple[tuple[float, float], ...] | None = None,
        mask: bool = False,
    ) -> Callable[..., bytes]:
        """The scene analysed once: ``encode_at(ratio=… | quality=… | smallest=True, refine_steps=0)`` -> token file.

        :meth:`encode_windows` in two halves, so an encoder that tries several rates of one scene (the
        enhancement layer's bases) runs the scan and the analysis transform once. ``keep_pixels``: hold
        the last block row of pixels for latent refinement (``refine_steps``); else only the latent is held.
        ``smallest=True``: the smallest file the ratio search can make (its largest step); ``means_only=True``: the
        header alone (version 5, no tokens), which decodes to the band means: the base under a layer where the
        network's tokens do not pay. ``nodata``, ``band_order``, ``scaling`` and ``mask``: the input file's
        convention, which :meth:`decode_to_geotiff` writes back (its nodata value, the codec's index of each band in
        its order, each band's GDAL (scale, offset) in the model's order, whether its empty pixels were a mask band);
        the DNs handed over use the codec's (nodata 0, these bands in the model's order).
        """
        if len(shape) != 3 or shape[0] != len(self.bands):
            raise InputError(f"expected ({len(self.bands)}, H, W) bands {', '.join(self.bands)}; got shape {shape}")
        if min(shape[1:]) < 1:
            raise InputError(f"empty scene {tuple(shape)}")
        if offset is not None and not 0 <= int(offset) <= 65535:
            raise InputError(f"offset must be 0..65535 DN, got {offset}; use 1000 for baseline >= 04.00, else 0")
        if level not in (None, *LEVELS.values()):
            raise InputError(f"level must be Level-1C or Level-2A, got {level!r}")
        if not 0 <= int(nodata) <= 65535:
            raise InputError(f"nodata must be 0..65535 DN, got {nodata}")
        if band_order is not None and sorted(band_order) != list(range(len(self.bands))):
            raise InputError(f"band_order must order the {len(self.bands)} bands, got {band_order}")
        if scaling is not None and len(scaling) != len(self.bands):
            raise InputError(f"scaling needs a (scale, offset) pair for each of the {len(self.bands)} bands")
        if nodata and mask:
            raise InputError("an input marks its empty pixels with a nodata value or a mask band, not both")
        _, height, width = (int(v) for v in shape)
        constants, live, valid, means, scale, zeros = _scan(read, len(self.bands), height, width, valid)
        self.last_notes = [
            f"band {self.bands[b]} is constant ({v} DN) over the scene (a dead band?): stored exactly, "
            f"the other {len(live)} bands coded" for b, v in sorted(constants.items())
        ]
        flat = list(constants)

        @functools.cache
        def rotation() -> spectral.Rotation | None:
            """The scene's KLT when the model has one: one more pass over the scene, only for a file with tokens."""
            if self.config.spectral != "klt":
                return None
            return _scene_klt(read, len(self.bands), height, width, flat, means, scale, valid)

        strip: dict[str, Any] = {"rows": (0, 0), "dn": None}  # the full-width rows of the current block row

        def standardised(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            top, bottom = strip["rows"]
            if not top <= r0 < r1 <= bottom:
                strip["rows"], strip["dn"] = (r0, r1), np.asarray(read(r0, 0, r1 - r0, width))
                top = r0
            x = strip["dn"][:, r0 - top : r1 - top, c0:c1].astype(np.float32)
            x[flat] = 0.0  # constants are side information: the network sees a flat plane
            # a pixel 0 in some bands only (listed in the header): its other bands are coded
            z = apply_standardise(x, means, scale, valid[r0:r1, c0:c1], band_zeros=zeros is not None)
            z[flat] = 0.0
            klt = rotation()
            return z if klt is None else klt.forward(z)

        @functools.cache
        def latent() -> tuple[np.ndarray, Any]:
            """The analysis transform's latent and the hyperprior's side information: run on the first file with
            tokens, never for the header alone (``means_only``), so a base of band means costs the scan only."""
            head.klt = rotation()
            y = analysis_blocks(self.model, standardised, height, width, self.config.latent)
            side = None
            if isinstance(self.entropy, HyperpriorCoder):  # side information: once per scene, whatever the step
                z = self.entropy.side(y)
                side = (z, *self.entropy.mean_scale(z, *y.shape[1:]))
            if not keep_pixels:
                strip.clear()  # the last block row's pixels are not needed by the rate control
            return y, side

        head = Header(height, width, 1.0, scale, means, self.model_id, valid=valid, band_zeros=zeros,
                      offset=int(offset or 0), offset_known=offset is not None, level=level,
                      constants=constants or None, klt=None, nodata=int(nodata),
                      band_order=None if band_order is None or list(band_order) == sorted(band_order)
                      else tuple(int(b) for b in band_order),
                      scaling=None if scaling is None or all(pair == (1.0, 0.0) for pair in scaling)
                      else tuple((float(a), float(b)) for a, b in scaling), mask=bool(mask),
                      **georef_fields(crs, transform))  # klt: latent()
        head.quantizer = QUANTIZER_CODES[self.config.quantizer]

        def rounder(lat: np.ndarray, delta: float) -> np.ndarray:
            return self.entropy.quantise(self.model, lat, float(np.float32(delta)), side=latent()[1])

        def build(delta: float, tokens: np.ndarray | None = None) -> bytes:
            head.delta = float(np.float32(delta))
            y, side = latent()
            tokens = rounder(y, delta) if tokens is None else tokens
            head.prior_scales = self.entropy.fit_scales(tokens, head.delta, side=side)  # None unless they save bytes
            head_bytes = head.to_bytes()
            return seal(head_bytes + self.entropy.encode(tokens, head.delta, head_bytes, side, head.prior_scales))

        def encode_at(*, ratio: float | None = None, quality: int | None = None, smallest: bool = False,
                      means_only: bool = False, refine_steps: int = 0) -> bytes:
            if (ratio is None) + (quality is None) + (not smallest) + (not means_only) != 3:
                raise InputError("give exactly one of ratio=, quality=, smallest=True or means_only=True")
            if means_only:
                return seal(head.means_only().to_bytes())
            latent()  # the scene's rotation and latent: the header's size below counts the rotation
            if smallest:  # a discrete quantizer has one rate: its only file
                return build(1.0 if self.config.discrete else rate_control.largest_step(self.config.delta_max))
            if refine_steps and not keep_pixels:
                raise ValueError("latent refinement needs the pixels: analyse with keep_pixels=True")
            if self.config.discrete:  # one rate: no step ladder, no step search
                raw = len(self.bands) * height * width * 2
                return _one_rate(build(1.0), ratio, raw, self.config.quantizer)
            if quality is not None:
                blob = build(self.delta_for_quality(quality))
            else:
                blob = rate_control.fit_ratio(build, ratio, (len(self.bands), height, width), len(head.to_bytes()),
                                              self.config.delta_min, self.config.delta_max)
            if refine_steps:  # encoder-side only: same format, same decoder
                budget = None if ratio is None else len(self.bands) * height * width * 2 / ratio
                y, side = latent()
                blob = refine_file(self.model, build, rounder, blob, standardised, y, valid, live, height, width,
                                   int(refine_steps), budget, side=side)
            return blob

        return encode_at

    @_by_file_model
    def read_header(self, blob: bytes, source: str = "token file") -> tuple[Header, int]:
        """Check the CRC, model and sizes, parse the header; returns it and the payload start.

        The grid it claims is bounded and the memory a decode needs is compared with what is free
        before anything is allocated: a forged or damaged size is one line, not an out-of-memory abort.
        """
        refuse_legacy_token_file(blob, source)  # a first-wave VQ file (EOTK): one line naming its version
        body = unseal(blob, source)
        head, pos = Header.from_bytes(body, len(self.bands), source)
        if head.model_id != self.model_id[:4]:
            raise TokenStreamError(
                f"{source} was made by model {head.model_id.hex()}, not this one ({self.model_id.hex()}); "
                "decode it with the model that made it"
            )
        if head.has_tokens and head.quantizer != QUANTIZER_CODES[self.config.quantizer]:
            kind = QUANTIZERS[head.quantizer] if head.quantizer < len(QUANTIZERS) else f"code {head.quantizer}"
            raise TokenStreamError(
                f"{source} holds {kind} tokens, this model quantizes with {self.config.quantizer}; "
                "decode it with the model that made it"
            )
        if not head.has_tokens and pos != len(body):
            raise TokenStreamError(f"{source} is a file with no tokens (version 5) yet holds {len(body) - pos} bytes "
                                   "after its header: the file is damaged; re-encode the scene")
        if head.has_tokens and (head.klt is not None) != (self.config.spectral == "klt"):
            raise TokenStreamError(
                f"{source} {'holds' if head.klt is not None else 'lacks'} the spectral transform a "
                f"{self.config.spectral!r} model {'does not use' if head.klt is not None else 'needs'}: "
                "the file is damaged; re-encode the scene"
            )
        if head.prior_scales is not None and head.prior_scales.size != self.config.latent:
            raise TokenStreamError(
                f"{source} holds {head.prior_scales.size} prior scales; this model codes {self.config.latent} "
                "channels: the file is damaged; re-encode it"
            )
        check_memory(head, len(self.bands), self.config.latent, source)
        return head, pos

    @_by_file_model
    def decode(
        self, blob: bytes, source: str = "token file", window: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """uint16 (C, H, W) in the input's DN convention (offset kept; nodata pixels 0, valid ones >= 1).

        ``window`` (row, col, height, width): only those pixels, synthesised from the latent sub-window
        that covers them plus the receptive-field halo (the full decode's window up to float rounding,
        at most 1 DN apart). Version-1 files decode as they always did: reflectance x 10000 without the
        offset they dropped; version-5 files (no tokens) to the band means, without the network.
        """
        head, pos = self.read_header(blob, source)
        if window is not None:
            window = _check_window(window, head.height, head.width, source)
            if window == (0, 0, head.height, head.width):
                window = None  # the whole scene: the full decode, to the last DN
        if not head.has_tokens:
            return self._means(head, window or (0, 0, head.height, head.width))
        tokens = self._tokens_after(blob, head, pos, source)
        lat, step = self.model.token_latent(tokens, head.delta)  # codebook lookup of a discrete quantizer
        if window is None and len(block_windows(head.height, head.width)) > 1:
            # a large scene: filled block by block (the same pieces), never a float copy of the whole scene
            out = np.empty((len(self.bands), head.height, head.width), np.uint16)
            for win, z in synthesis_blocks(self.model, lat, step, head.height, head.width, len(self.bands)):
                r, c, h, w = win
                out[:, r : r + h, c : c + w] = self._to_dn(z, head, win)
            return out
        if window is None:
            z = synthesis(self.model, lat, step, head.height, head.width, len(self.bands))
            return self._to_dn(z, head, (0, 0, head.height, head.width))
        return self._to_dn(synthesis_window(self.model, lat, step, window, len(self.bands)), head, window)

    def _means(self, head: Header, window: tuple[int, int, int, int]) -> np.ndarray:
        """``window`` of a file with no tokens: each band's mean (a zero standardised block), no network.

        One zero pixel goes through :meth:`_to_dn`'s arithmetic and is broadcast: every pixel of a zero block comes
        to the same DNs, so this is that block's decode without a float copy of the window (a tenth of its time)."""
        bands = len(self.bands)
        value = self._dn_values(np.zeros((bands, 1, 1), np.float32), head)
        out = np.empty((bands, *window[2:]), np.uint16)
        out[...] = value
        return self._restored(out, head, window)

    def _to_dn(self, z: np.ndarray, head: Header, window: tuple[int, int, int, int]) -> np.ndarray:
        """uint16 DNs of the standardised pixels ``z`` of ``window``: de-standardised, constants and nodata restored."""
        return self._restored(self._dn_values(z, head), head, window)

    @staticmethod
    def _dn_values(z: np.ndarray, head: Header) -> np.ndarray:
        """uint16 DNs of standardised pixels ``z`` (C, h, w; overwritten): de-standardised, rounded, 1..65535.

        In strips of :data:`DN_STRIP_PIXELS` on the process's cores, written into the uint16 output: whole, the
        rotation's product, the de-standardisation's passes and the cast made scene-sized float arrays (25 of a 1000 px
        city's 113 ms synthesis-and-DNs at 1/50); in strips the same values (each pixel's arithmetic is its own)
        take about a tenth less of the learned decode."""
        bands, height, width = z.shape
        out = np.empty((bands, height, width), np.uint16)
        rows = max(1, DN_STRIP_PIXELS // max(1, width))
        tops = range(0, height, rows)
        scale, means = np.float32(head.scale), head.means[:, None, None].astype(np.float32)

        def strip(top: int) -> None:
            x = z[:, top : top + rows]
            if head.klt is not None:  # components back to standardised bands, through the stored rotation
                x = head.klt.inverse(x)
            np.multiply(x, scale, out=x)  # in place: the strip is ours, and this is hot
            np.add(x, means, out=x)
            np.rint(x, out=x)
            np.minimum(np.maximum(x, 1, out=x), 65535, out=x)  # 0 stays the nodata value
            np.copyto(out[:, top : top + rows], x, casting="unsafe")  # whole numbers 1..65535: exact

        with single_threaded_blas(), strip_map(workers(len(tops))) as mapped:
            for _ in mapped(strip, tops):
                pass
        return out

    @staticmethod
    def _restored(out: np.ndarray, head: Header, window: tuple[int, int, int, int]) -> np.ndarray:
        """``out`` (uint16 DNs of ``window``) with the header's constant bands and nodata written into it."""
        r, c, h, w = window
        for band, value in (head.constants or {}).items():
            out[band] = value
        if head.valid is not None:
            kept = None
            if head.band_zeros is not None:  # masked pixels holding data in some bands: those bands kept
                rows, cols, bits = head.band_zeros.in_window(head.width, window)
                kept = out[:, rows, cols]
            out[:, ~head.valid[r : r + h, c : c + w]] = 0
            if kept is not None:
                zero = (bits[None, :] >> np.arange(out.shape[0], dtype=np.uint16)[:, None]) & 1
                out[:, rows, cols] = np.where(zero.astype(bool), np.uint16(0), kept)
        return out

    @_by_file_model
    def decode_blocks(
        self, blob: bytes, source: str = "token file"
    ) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
        """The decoded scene one block at a time: ((row, col, height, width), uint16 (C, height, width)).

        The blocks and halos of :meth:`decode`'s synthesis (:func:`synthesis_blocks`), so the pieces are
        bit-identical to it, in memory bounded by a block + the tokens (row-major, 1024 px blocks).
        """
        head, pos = self.read_header(blob, source)
        if not head.has_tokens:  # the band means, in the synthesis's blocks (a tiled layer's tiles are these)
            for win in block_windows(head.height, head.width):
                yield win, self._means(head, win)
            return
        lat, step = self.model.token_latent(self._tokens_after(blob, head, pos, source), head.delta)
        for win, z in synthesis_blocks(self.model, lat, step, head.height, head.width, len(self.bands)):
            yield win, self._to_dn(z, head, win)

    @_by_file_model
    def decode_to_geotiff(
        self, blob: bytes, path: str | os.PathLike, source: str = "token file", overwrite: bool = False
    ) -> Path:
        """Decode a token file to a COG block by block (:meth:`decode_blocks`), in memory bounded by a block.

        Each block is written with a windowed write into a tiled GeoTIFF beside ``path`` and GDAL copies
        that into the COG (layout, tags and read-back check as
        :func:`~eocompress.imagery.codec.pipeline.write_geotiff`); the pixels are :meth:`decode`'s, in the input
        file's band order and nodata value (:func:`~eocompress.imagery.codec.pipeline.in_source_convention`).
        """
        head, _ = self.read_header(blob, source)
        return write_geotiff_windows(path, (len(self.bands), head.height, head.width), self.header_meta(head),
                                     self.decode_blocks(blob, source), overwrite=overwrite)

    # ---------------------------------------------------------------- scenes and files
    def encode_scene(
        self, scene: Any, *, ratio: float | None = None, quality: int | None = None, refine_steps: int = 0
    ) -> bytes:
        """Token-file bytes of a :class:`~eocompress.imagery.readers.scenes.Scene` (its model bands, DNs as read).

        A :class:`~eocompress.imagery.readers.windows.SceneWindows` (``open_scene``) is encoded streamed,
        window by window (:meth:`encode_windows`), in memory bounded by a strip of blocks.

        Nodata is where the DNs are 0 (the product's cloud mask is not nodata: cloudy pixels are coded).
        The scene's offset is recorded only when it came from metadata or was given.
        """
        return self.scene_encoder(scene, keep_pixels=bool(refine_steps))(ratio=ratio, quality=quality,
                                                                          refine_steps=refine_steps)

    def scene_encoder(self, scene: Any, keep_pixels: bool = False) -> Callable[..., bytes]:
        """:meth:`encode_scene` analysed once: ``encode_at(ratio=… | quality=… | smallest=True, refine_steps=0)``
        -> token file (see :meth:`windows_encoder`)."""
        missing = [b for b in self.bands if b not in scene.bands]
        if missing:
            raise InputError(
                f"the scene lacks band(s) {', '.join(missing)}; the codec needs {', '.join(self.bands)} "
                f"(it has {', '.join(scene.bands) or 'none'})"
            )
        sel = scene.select(self.bands)
        known = scene.meta.get("offset_known", True)
        level = scene.meta.get("processing_level")
        args = {"offset": int(scene.offset) if known else None, "crs": scene.crs, "transform": scene.transform,
                "level": level if level in LEVELS.values() else None, "keep_pixels": keep_pixels,
                "nodata": int(scene.meta.get("nodata", 0)),
                "band_order": source_order(scene.meta.get("file_band_order"), self.bands),
                "scaling": band_scaling(scene.meta.get("band_scaling"), self.bands),
                "mask": bool(scene.meta.get("mask"))}
        if hasattr(sel, "read"):  # a scene opened for windowed reads: streamed, never in memory
            return self.windows_encoder(sel.read, (len(self.bands), *sel.shape), **args)
        data = np.asarray(sel.data)
        return self.windows_encoder(lambda r, c, h, w: data[:, r : r + h, c : c + w], data.shape, **args)

    def save(self, blob: bytes, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write token-file bytes atomically; an existing file is replaced only with ``overwrite``."""
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
        """The metadata of a parsed header as a GeoTIFF writer and ``imagery info`` want it: ``bands`` in the
        codec's order (as :meth:`decode` returns them), ``source_nodata``, ``source_bands``, ``source_scaling`` and
        ``source_mask`` (the input file's nodata value, band order, each band's GDAL (scale, offset) and mask band,
        which the GeoTIFF writers give back)."""
        crs = f"EPSG:{head.epsg}" if head.epsg else head.wkt
        return {"crs": crs, "transform": head.transform, "bands": self.bands, "offset": head.offset,
                **self.source_meta(head), "offset_known": head.offset_known, "processing_level": head.level,
                "constant_bands": {self.bands[b]: v for b, v in sorted((head.constants or {}).items())},
                "format_version": head.version, "model_id": head.model_id.hex(), "height": head.height,
                "width": head.width}

    def source_meta(self, head: Header) -> dict[str, Any]:
        """The input file's convention a header records: ``source_nodata`` (0: Sentinel-2's), ``source_bands`` (the
        codec's bands in the input's order), ``source_scaling`` (band name -> GDAL (scale, offset), or None) and
        ``source_mask`` (True: its empty pixels were a mask band, written back as the decoded file's mask)."""
        order = head.band_order or range(len(self.bands))
        return {"source_nodata": head.nodata, "source_bands": [self.bands[b] for b in order],
                "source_scaling": None if head.scaling is None else dict(zip(self.bands, head.scaling, strict=True)),
                "source_mask": head.mask}

    @_by_file_model
    def fixed_length_bytes(self, blob: bytes) -> int:
        """Payload size the same tokens would take as fixed-length indices (ceil(log2 alphabet) bits each).

        The saving of the learned prior + range coder is measured against this.
        """
        head, _ = self.read_header(blob)
        rows, cols = latent_shape(head)
        return -(-self.entropy.fixed_length_bits(head.delta, head.prior_scales) * rows * cols // 8)

    @_by_file_model
    def tokens(self, blob: bytes, source: str = "token file") -> np.ndarray:
        """The integer tokens of a file as coded: (M, H/16, W/16) signed steps, or (groups, H/16, W/16) indices."""
        return self._header_and_tokens(blob, source)[1]

    def _header_and_tokens(self, blob: bytes, source: str) -> tuple[Header, np.ndarray]:
        """The checked header of a file of this model and its range-decoded tokens."""
        head, pos = self.read_header(blob, source)
        return head, self._tokens_after(blob, head, pos, source)

    def _tokens_after(self, blob: bytes, head: Header, pos: int, source: str) -> np.ndarray:
        """The range-decoded tokens of ``blob``, whose checked header ``head`` ends at ``pos``."""
        if not head.has_tokens:
            raise TokenStreamError(
                f"{source} holds no tokens: at this rate the network's tokens did not pay for their bytes, so the "
                "file is the band means under a KLT + JPEG 2000 layer; `imagery encode --no-layer` writes tokens"
            )
        return self.entropy.decode(blob[pos:-4], latent_shape(head), head.delta, source, blob[:pos],
                                   head.prior_scales)

    @_by_file_model
    def token_indices(self, blob: bytes, source: str = "token file") -> tuple[np.ndarray, list[int]]:
        """Codebook indices a token model consumes: int32 (H/16, W/16, groups) and each group's vocabulary size.

        A discrete quantizer's indices are its codebook entries (``0..K-1``; FSQ 8-8-8-6-5: K = 15,360);
        the scalar model's are each channel's alphabet position at the file's step (``0..size-1``).
        """
        head, tokens = self._header_and_tokens(blob, source)
        # positions in the model's own alphabets at this step, the same for every file at this step whatever
        # prior scales a file was coded with (a token a wider scaled table let through is clipped to them)
        alphabets = self.entropy.alphabets(head.delta)
        lows = np.array([lo for lo, _ in alphabets], np.int64)[:, None, None]
        sizes = [size for _, size in alphabets]
        idx = np.clip(tokens - lows, 0, np.array(sizes)[:, None, None] - 1)
        return np.ascontiguousarray(idx.transpose(1, 2, 0)).astype(np.int32), sizes


#: Pixels per row strip of the encoder's scan pass (12 bands: ~25 MB of uint16 a strip).
SCAN_PIXELS = 1 << 20


def _scan(
    read: Callable[[int, int, int, int], np.ndarray], bands: int, height: int, width: int,
    valid: np.ndarray | None,
) -> tuple[dict[int, int], list[int], np.ndarray, np.ndarray, int, BandZeros | None]:
    """Passes over row strips: (constant bands {band: value}, live bands, valid mask, band means, scale,
    the bands that are 0 at masked pixels holding data elsewhere: None when there are none or ``valid`` is given).

    A band is constant when it takes one value over the pixels that hold data (any band non-zero; all
    pixels if none does). Nodata (default): a 0 in any live band (no live band: all bands 0). The
    means and scale are :func:`standardise`'s of the scene with constant bands at 0, bit for bit
    (:func:`streamed_stats`).
    """
    rows = max(1, SCAN_PIXELS // width)
    starts = range(0, height, rows)

    def strip(r0: int) -> np.ndarray:
        return np.asarray(read(r0, 0, min(rows, height - r0), width))

    lo, hi = np.full(bands, 65536, np.int64), np.full(bands, -1, np.int64)  # over pixels holding data
    lo_all, hi_all = lo.copy(), hi.copy()
    rule = np.empty((height, width), bool) if valid is None else np.asarray(valid, bool)
    if rule.shape != (height, width):
        raise InputError(f"valid must be a ({height}, {width}) mask, got shape {rule.shape}")
    for r0 in starts:
        dn = strip(r0)
        _check_dn(dn)
        flat = dn.reshape(bands, -1)
        nonzero = flat != 0
        has = nonzero.any(axis=0)
        low, high = flat.min(1), flat.max(1)
        lo_all, hi_all = np.minimum(lo_all, low), np.maximum(hi_all, high)
        if has.all():  # the usual strip: no gather
            lo, hi = np.minimum(lo, low), np.maximum(hi, high)
        elif has.any():
            sel = flat[:, has]
            lo, hi = np.minimum(lo, sel.min(1)), np.maximum(hi, sel.max(1))
        if valid is None:  # the usual rule (no band 0); redone below when a constant band is 0
            rule[r0 : r0 + dn.shape[1]] = nonzero.all(axis=0).reshape(dn.shape[1:])
    if hi.max() < 0:  # no pixel holds data: constants over all pixels
        lo, hi = lo_all, hi_all
    constants = {b: int(lo[b]) for b in range(bands) if lo[b] == hi[b]}
    live = [b for b in range(bands) if b not in constants]
    if valid is None and (not live or 0 in constants.values()):
        for r0 in starts:  # nodata is a 0 in a live band (or every band 0): the mask again
            dn = strip(r0)
            rule[r0 : r0 + dn.shape[1]] = np.all(dn[live] != 0, axis=0) if live else np.any(dn != 0, axis=0)
    anyvalid = bool(rule.any())
    flat_bands = list(constants)

    def pieces() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for r0 in starts:
            x = strip(r0).astype(np.float32)
            x[flat_bands] = 0.0
            keep = rule[r0 : r0 + x.shape[1]].ravel()
            yield x.reshape(bands, -1), (None if keep.all() or not anyvalid else keep)

    n = int(rule.sum()) if anyvalid else height * width
    means, scale = streamed_stats(pieces, n, bands, live, masked=anyvalid)
    zeros = None
    if valid is None and live and not rule.all():  # masked pixels that hold data in other bands
        parts = []
        for r0 in starts:
            if not rule[r0 : r0 + rows].all():
                dn = strip(r0)
                parts.append(BandZeros.of(dn, _partial(dn, rule[r0 : r0 + dn.shape[1]], live), r0 * width))
        zeros = BandZeros.join(parts)
    return constants, live, rule, means, scale, zeros


def _partial(dn: np.ndarray, valid: np.ndarray, live: list[int]) -> np.ndarray:
    """Pixels of ``dn`` (C, h, w) the nodata rule masks (a 0 in a live band) that hold data in another live band."""
    return ~valid & np.any(dn[live] != 0, axis=0)


def _scene_klt(
    read: Callable[[int, int, int, int], np.ndarray], bands: int, height: int, width: int, flat: list[int],
    means: np.ndarray, scale: int, valid: np.ndarray,
) -> spectral.Rotation:
    """The scene's KLT (:mod:`~eocompress.imagery.tokenizer.spectral`, Givens form) from one more pass over row strips.

    The standardised pixels are those the analysis sees (constant bands and nodata at 0, so they add nothing).
    """
    rows = max(1, SCAN_PIXELS // width)
    moment = np.zeros((bands, bands))
    for r0 in range(0, height, rows):
        x = np.asarray(read(r0, 0, min(rows, height - r0), width)).astype(np.float32)
        x[flat] = 0.0
        z = apply_standardise(x, means, scale, valid[r0 : r0 + x.shape[1]])
        z[flat] = 0.0
        moment += spectral.second_moment(z)
    return spectral.Rotation.of_moment(moment)


def _check_dn(dn: np.ndarray) -> None:
    """One line unless ``dn`` holds integers in 0..65535 (uint16 needs no look at the values)."""
    if dn.dtype == np.uint16:
        return
    if dn.dtype.kind not in "ui" or (dn.size and (int(dn.min()) < 0 or int(dn.max()) > 65535)):
        raise InputError(f"Sentinel-2 DNs must be integers in 0..65535 (uint16); got {dn.dtype} values")


def _check_window(
    window: tuple[int, int, int, int], height: int, width: int, source: str
) -> tuple[int, int, int, int]:
    """``window`` as four ints if it lies inside the H x W scene with a positive size, else one-line InputError."""
    try:
        r, c, h, w = (int(v) for v in window)
    except (TypeError, ValueError) as exc:
        raise InputError(f"window must be (row, col, height, width), got {window!r}") from exc
    if h < 1 or w < 1 or r < 0 or c < 0 or r + h > height or c + w > width:
        raise InputError(
            f"window {(r, c, h, w)} is not inside {source}'s {height} x {width} pixels; "
            "give (row, col, height, width) with row + height <= H and col + width <= W"
        )
    return r, c, h, w


def _one_rate(blob: bytes, ratio: float | None, raw: int, quantizer: str) -> bytes:
    """``blob`` when it meets ``ratio`` (None: any size); a discrete quantizer has one rate, so one line otherwise."""
    if ratio is None:
        return blob
    if not (math.isfinite(ratio) and ratio > 1):
        raise InputError(f"ratio must be a number > 1 (e.g. 450), got {ratio}")
    if len(blob) > raw / ratio:
        reached = math.floor(raw / len(blob) * 10) / 10
        raise InputError(
            f"{ratio:g}x cannot be reached: this model's {quantizer} quantizer has one rate, {reached:g}x for this "
            f"scene; ask for --ratio {reached:g} or less, or use a model with the scalar quantizer (a rate ladder)"
        )
    return blob
