"""Enhancement layer under the learned codec's file: a learned base plus the residual coded by KLT + AV1 or JPEG 2000.

The learned codec's ladder ends at its smallest trained quantisation step (``delta_min``), and a smaller
step buys nothing (+0.1 dB at most on a held-out desert crop, then worse): the autoencoder has a
reconstruction floor. And on ground unlike what it learned (cloud, bright desert, JPEG 2000-quantised
bands) its bytes buy less than a linear spectral transform's. So the encoder also tries a cheaper learned
base with the rest of the bytes coding the residual (original DN − base decode, both in the input's DN
convention) with a per-scene KLT whose components are coded by AV1 intra (since 0.11: :mod:`av1`) or JPEG 2000
(the closer of the two at few bits a pixel), and keeps whichever whole file is closer.
The base stays a token file: its tokens are what ``imagery tokens`` exports. The cheapest base holds no tokens
(a version-5 token file: the header alone, decoded to the band means without the network), so where the
network does not pay the file is a KLT layer (the KLT + JPEG 2000 anchor's design, with AV1) under the token
file's header. Layout
(little-endian)::

    magic "EOE3" | base length u32 | base token file (EOT2) | side length u16 | KLT side | filter | codestream | CRC32

The residual is stored shifted by :data:`SHIFT` as uint16; decode = base + residual, clipped to 1..65535
at valid pixels, nodata (0 in the base) kept 0. The CRC covers everything before it: a damaged layer is
one line (:class:`~eocompress.errors.FileFormatError`), never a silently wrong image.

A scene too large to hold in memory (encoded window by window) gets a tiled layer, coded and decoded
one base block (1024 px) at a time, so memory stays bounded by a block whatever the scene's size::

    magic "EOE4" | base length u32 | base token file | tile count u32 |
    tile count x (row u32, col u32, height u32, width u32, side length u16, codestream length u32) |
    the tiles' sides (KLT side | filter) and codestreams in that order | CRC32

Every tile gets the layer's bytes in proportion to its pixels; a tile whose share is too small for a
codestream keeps the base alone (side and codestream lengths 0).

Since 0.8 each side ends with the layer filter (:mod:`layer_filter`: per band a 5 x 5 Wiener filter of the decoded
residual, fitted by the encoder, sent where it pays for its bytes; 2 bytes when no band is filtered). Layers
written before 0.8 (``EOE1``, ``EOE2``: the side is the KLT alone) decode as they did; 0.7 refuses the new
magics in one line rather than decoding them without their filter. Since 0.11 a file whose codestream (or one
tile's) is AV1 says so with ``EOE5`` (whole) or ``EOE6`` (tiled), the same layouts, so that releases before it
refuse it in one line instead of reading an AV1 picture as a damaged JPEG 2000 codestream; since 0.11.1 an AV1
codestream is its OBUs alone (:mod:`avif_boxes`: ~270 B less, so small layers use AV1 too), said by ``EOE7`` (whole)
and ``EOE8`` (tiled); since 0.12.1 a large layer's groups of three components are codestreams apart, decoded on the
process's cores (:func:`av1.apart`), said by ``EOE9`` (whole) and ``EOEA`` (tiled).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from eocompress._pages import no_stalling_hugepages
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codec.learned_transforms import block_windows
from eocompress.imagery.codec.pipeline import write_geotiff_windows
from eocompress.imagery.codecs import av1, avif_boxes, htj2k, layer_filter, layer_sum
from eocompress.imagery.codecs.effort import check_effort
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size
from eocompress.imagery.codecs.klt import (
    TOP,
    KLTBasis,
    component_choices,
    klt_forward_each,
    klt_side_bytes,
    rescaled,
)
from eocompress.imagery.evaluation.fidelity import reflectance_dn, spectral_angle_deg, squared_dn_error
from eocompress.imagery.readers.scenes import Scene

MAGIC = b"EOE3"
#: The tiled layer of a scene encoded window by window.
MAGIC_TILED = b"EOE4"
#: The same layers as written before 0.8: their sides hold the KLT alone (no filter). Still read.
MAGIC_V07, MAGIC_TILED_V07 = b"EOE1", b"EOE2"
#: The 0.8 layouts when a codestream is AV1 (since 0.11): a release before it refuses them in one line instead of
#: reading an AV1 picture as a damaged JPEG 2000 codestream.
MAGIC_AV1, MAGIC_TILED_AV1 = b"EOE5", b"EOE6"
#: The 0.8 layouts when a codestream is AV1 OBUs without their AVIF boxes (since 0.11.1): 0.11.0 refuses them in one
#: line instead of reading the OBUs as a damaged JPEG 2000 codestream.
MAGIC_OBU, MAGIC_TILED_OBU = b"EOE7", b"EOE8"
#: The 0.8 layouts when a codestream is AV1 groups coded apart (since 0.12.1: :func:`av1.is_grouped`): 0.12.0 refuses
#: them in one line instead of reading them as a damaged JPEG 2000 codestream.
MAGIC_GROUPED, MAGIC_TILED_GROUPED = b"EOE9", b"EOEA"
#: A layer whose filter centres each band on the mean its KLT planes give (since 0.12.2: :func:`layer_sum.plane_means`,
#: a pass fewer at decode), any codestream (each says what it is): 0.12.1 refuses it in one line instead of centring
#: on the decoded band's mean. Only filtered layers are written so; an unfiltered one keeps its coder's magic.
MAGIC_CENTRED, MAGIC_TILED_CENTRED = b"EOEB", b"EOEC"
WHOLE = (MAGIC, MAGIC_AV1, MAGIC_OBU, MAGIC_GROUPED, MAGIC_CENTRED, MAGIC_V07)
TILED = (MAGIC_TILED, MAGIC_TILED_AV1, MAGIC_TILED_OBU, MAGIC_TILED_GROUPED, MAGIC_TILED_CENTRED, MAGIC_TILED_V07)
#: Bytes of one tile record of a tiled layer (window, side length, codestream length).
TILE_RECORD = struct.calcsize("<IIIIHI")
#: Residual DN + SHIFT is what the KLT sees (uint16); a residual beyond ±32767 DN is clipped.
SHIFT = 32768
#: Bytes around the base and the layer: magic, base length, side length, CRC32.
OVERHEAD = 4 + 4 + 2 + 4
#: Smallest layer budget worth a JPEG 2000 codestream (below it the base alone is returned).
MIN_LAYER_BYTES = 512
#: The rate search's file is near the top of the ladder (:func:`near_top_rate`) when its step is at or below this
#: ladder level's: there the autoencoder's floor makes more base bytes buy little, and a learned base
#: (:data:`LAYER_BASE_LEVELS`) is tried under the layer beside the thin base.
NEAR_TOP_LEVEL = 7
#: Learned bases (ladder levels) tried under a layer near the top, each getting the whole layer (AV1, the filter)
#: beside the thin base (:func:`_closest`). 0.6-0.12.2 tried levels 10 (where the rate search reached the top), 7 and
#: 4, and since 0.11.1 gave the whole layer to the one whose residual an HTJ2K layer coded closest. Under AV1 layers
#: the cheaper levels code closer: on the training crops at 1/50 and 1/100 (``benchmarks/imagery/base_ranking.py
#: --levels 10 7 4 3 2 1``, 512 px) the best of all seven bases was level 1-4 on 9 of 14 crop-rates, the thin base on
#: 4 and level 7 on 1. Level 2 and the thin base came within 0.07 dB of that best (0.024 dB on average); the ranked
#: rule within 0.28 dB (0.068), after encoding three learned bases and ranking each. Two learned levels (2 and 1) came
#: within 0.04 dB, for a third whole layer.
LAYER_BASE_LEVELS = (2,)
#: A file whose base holds tokens decodes through the synthesis network (on a 1000 px city about one JPEG 2000
#: decode's time), so a learned base under the layer is kept only where its file is at least this many dB closer than
#: the closest file without one (:func:`_closest`). On the training crops at 1/50 and 1/100 level 2 was closer than
#: the thin base by 0.15-0.74 dB where it won, and by 0.03 dB once (Hydro's patch_1000 at 1/50, which the margin
#: gives to the thin base).
LEARNED_BASE_MARGIN_DB = 0.1
#: A learned base near the top gets its whole (AV1) layer only where its residual's HTJ2K ranking
#: (:func:`_ranked_counts`, which the layer makes first anyway) is at least this many dB closer than the thin base's
#: (:func:`_closest`). AV1 gains more over HTJ2K on the thin base's residual than on a learned base's: on the training
#: crops at 1/50 and 1/100 (``benchmarks/imagery/base_ranking.py``) level 2 led the thin base by 0.29-1.15 dB under
#: HTJ2K where its whole layer won, by 0.25 dB where it lost by 0.01 dB, and by -0.33 to +0.09 dB on the 6 crop-rates
#: where the thin base's file was kept (on Hydro's patch_1000 at 1/50 by :data:`LEARNED_BASE_MARGIN_DB`: level 2 was
#: 0.03 dB closer). Those 6 skip level 2's AV1 layer; every file kept is 0.12.3's.
LEARNED_RANKING_MARGIN_DB = 0.2
#: The base tried under a layer at every rate gets this share of the budget (a float, where a ladder level is an
#: int); 0: the header alone (no tokens, decoded to the band means: ~90 B with a georeference); a share below the
#: smallest token file the codec makes (its largest step, ~170-240 B: the band means, the rotation and tokens
#: nearly all 0): that file. Share 0's base was that file before 0.7; the header alone was as close or closer on
#: 17 of 19 training scene-rates (``base_share.py --shares 0 --thumbnail``: +0.00 to +0.13 dB; that file by
#: 0.01 dB on 2), for fewer bytes and no synthesis at encode or decode. The share was chosen on training scenes
#: (``benchmarks/imagery/base_share.py``: two Hydro ocean patches, the DSen2 tile, an eo-learn scene, Pisa, Aguas
#: Claras and Milan, 768 px centre crops, 1/200-1/1000): of the shares 0, 0.02 and 0.05, the smallest file was
#: closest or tied on 14 of the 19 scene-rates where a layer fit (in a sweep of 0.02-0.1, 0.1 on none). A thin
#: learned base decodes with artefacts that cost the residual more bytes than the base saves, so where the layer
#: wins the file is the KLT layer under the token file's header: ``--no-layer`` for token archives.
BASE_SHARE = 0.0
#: 0.6.2-0.12.1 also tried, in the ladder's upper half (the rate search's step at or below level 5's: 1/100-1/200),
#: the learned file at 85 % of the budget under a layer, chosen when the layers were JPEG 2000 (at 1/200 it was
#: closest on 9 of 13 training scene-rates). Under AV1 layers (since 0.11) the thin base was closer on 13 of the 14
#: training crop-rates at 1/100 and 1/200 (``base_share.py --shares 0 0.85 --ratios 100 200``, 768 px: by 0.9-2.1 dB
#: at 1/100, 0.2-1.4 dB at 1/200, eo-learn's scene fitting no 0.85 base; 0.85 by 0.03 dB on Milan at 1/200), and no
#: file of the held-out suite (0.12.1) had such a base, so 0.12.2 no longer tries it: a learned encode and a whole
#: layer fewer at those rates.
#: Side (px) of the centre window on which the base level of a tiled layer is chosen.
LEVEL_WINDOW = 1024
#: A layer with room for this many times the largest layer filter (74 B at 12 bands) codes its codestream with the
#: filter's bytes set aside, less than JPEG 2000's own 2 % rate tolerance; a smaller one codes it at the full room
#: and again smaller when a filter is chosen that does not fit beside it (:func:`_filtered_layer`).
FILTER_RESERVE_AT = 100

#: A KLT component count whose layer, unfiltered, has more than this times the closest count's squared error gets
#: no filter fit (it is not kept). On training crops (Hydro's patch_0; Aguas Claras, Pisa and Milan centres of 120,
#: 256 and 400 px; 1/200-1/1000) the filter changed the closest count in 4 of 34 layers with a choice, always to one
#: within 1.033 times unfiltered; fitting every count took 3.6 s of a 600 px scene's 10 s encode at 1/200.
FILTER_MARGIN = 1.05
#: KLT component counts the default layer ranks where all of them are affordable (side information under 5 % of the
#: room; else :func:`component_choices`'s). With JPEG 2000's rate allocation the weak components still cost bytes:
#: on held-out scenes at 1/1000 fewer components coded 0.1-1.4 dB closer than all 12 (docs/design/imagery-codec.md,
#: 0.9.1), and at 1/200 a whole cloudy tile wanted all 12.
LAYER_COMPONENTS = (12, 8, 6, 4, 3)
#: Counts coded by OpenJPEG after the HTJ2K ranking (:func:`_ranked_counts`): the closest by HTJ2K where the room is
#: large, the two closest where it is small (a few KB: OpenJPEG's runs are cheap there and its order of the counts
#: differs from HTJ2K's more often).
RANKED_KEEP, RANKED_KEEP_SMALL = 1, 2
#: The default layer codes its KLT planes with AV1 (:func:`_coders`): on training crops 0.3-0.7 dB closer than
#: OpenJPEG at the same bytes on 768 px crops, 0.3-1.5 dB on 120-256 px (docs/design/imagery-codec.md, 0.11.0 and
#: 0.11.1). False: OpenJPEG everywhere (0.10's layers; ``benchmarks/imagery/base_ranking.py`` measures with it).
LAYER_AV1 = True
#: KLT component counts the fast layer tries where all of them are affordable: an HTJ2K stream has no rate
#: allocation to leave weak components out, so fewer components often code closer (on training crops at
#: 1/200-1/1000 the best of 12, 6 and 3 was within 0.05 dB of the best of 12, 8, 6, 4 and 3).
FAST_COMPONENTS = (12, 6, 3)
#: Pixels the fast layer fits its KLT on (evenly strided; :func:`klt_forward_each`).
FAST_FIT_PIXELS = 1 << 18


def is_enhanced(blob: bytes) -> bool:
    """True when ``blob`` is a base + enhancement-layer file, whole or tiled, of any release (not a token file)."""
    return bytes(blob[:4]) in WHOLE + TILED


def is_tiled(blob: bytes) -> bool:
    """True when ``blob`` is a tiled enhancement-layer file (a side and a codestream per base block)."""
    return bytes(blob[:4]) in TILED


def is_filtered(blob: bytes) -> bool:
    """True when ``blob`` is an enhancement-layer file of 0.8 or later, whose sides end with the layer filter."""
    return bytes(blob[:4]) not in (MAGIC_V07, MAGIC_TILED_V07) and is_enhanced(blob)


def is_plane_centred(blob: bytes) -> bool:
    """True when ``blob`` is a layer file whose filter centres the bands on their planes' means (since 0.12.2)."""
    return bytes(blob[:4]) in (MAGIC_CENTRED, MAGIC_TILED_CENTRED)


def residual_of(data: np.ndarray, base: np.ndarray) -> np.ndarray:
    """uint16 (C, H, W): original DN − base DN + SHIFT (0 residual where the base is nodata), made in one int32
    array."""
    res = np.subtract(data, base, dtype=np.int32)
    res += SHIFT
    np.clip(res, 0, 65535, out=res)
    res[base == 0] = SHIFT
    return res.astype(np.uint16)


def encode_layer(data: np.ndarray, base_blob: bytes, base: np.ndarray, budget: int,
                 valid: np.ndarray | None = None, offset: int = 0) -> bytes | None:
    """The whole file (base + residual layer) at most ``budget`` bytes; None when no layer fits.

    ``data`` and ``base`` are uint16 (C, H, W) in the same DN convention, whose reflectance offset is ``offset``
    (it only weighs the spectral angle the layer filter's choice looks at); the component count of the
    residual's KLT is chosen by squared error among those that fit (as the KLT + JPEG 2000 anchor does).
    """
    got = _layer(data, base_blob, base, budget, valid, offset)
    return None if got is None else got[0]


def _layer(data: np.ndarray, base_blob: bytes, base: np.ndarray, budget: int, valid: np.ndarray | None,
           offset: int, fast: bool = False, ranked: dict[str, float] | None = None) -> tuple[bytes, float] | None:
    """:func:`encode_layer` and the squared DN error of its residual (the whole file's error); ``fast``: the
    HTJ2K layer of :func:`_code_residual`. ``ranked``: the default layer's HTJ2K ranking (:func:`_default_residual`)."""
    got = _code_residual(residual_of(data, base), budget - len(base_blob) - OVERHEAD, valid, base == 0,
                         _file_angle(data, base, offset, valid), fast, ranked)
    if got is None:
        return None
    side, stream, err = got
    return layer_file(base_blob, side, stream, _filters(side, data.shape[0])), err


def layer_file(base_blob: bytes, side: bytes, stream: bytes, centred: bool = False) -> bytes:
    """The whole-scene layer file (``EOE3``; ``EOE7`` when the codestream is AV1: :func:`_magic`) of a base token
    file, a layer's side (KLT + filter) and its codestream; ``centred``: its filter is centred on the planes' means
    (``EOEB``)."""
    magic = _magic([stream], tiled=False, centred=centred)
    body = magic + struct.pack("<I", len(base_blob)) + base_blob + struct.pack("<H", len(side)) + side + stream
    return body + struct.pack("<I", zlib.crc32(body))


def _magic(streams: list[bytes], tiled: bool, centred: bool = False) -> bytes:
    """The magic of a layer file whose codestreams are ``streams``: the oldest layout that reads them all (a filter
    centred on the planes' means, ``centred``: ``EOEB``/``EOEC``; AV1 groups apart: ``EOE9``/``EOEA``; AV1 OBUs:
    ``EOE7``/``EOE8``; AVIF files: ``EOE5``/``EOE6``; JPEG 2000 and HTJ2K: ``EOE3``/``EOE4``)."""
    if centred:
        return MAGIC_TILED_CENTRED if tiled else MAGIC_CENTRED
    if any(av1.is_grouped(s) for s in streams):
        return MAGIC_TILED_GROUPED if tiled else MAGIC_GROUPED
    if any(avif_boxes.is_obus(s) for s in streams):
        return MAGIC_TILED_OBU if tiled else MAGIC_OBU
    if any(av1.is_avif(s) for s in streams):
        return MAGIC_TILED_AV1 if tiled else MAGIC_AV1
    return MAGIC_TILED if tiled else MAGIC


def _filters(side: bytes, bands: int) -> bool:
    """True when a layer's ``side`` (KLT + filter, as this encoder writes it) filters any of its ``bands``."""
    return bool(side) and bool(read_side(side, bands, filtered=True)[1].on.any())


def _code_residual(res: np.ndarray, room: int, valid: np.ndarray | None, zeros: np.ndarray,
                   angle: Callable[[np.ndarray], float], fast: bool = False,
                   ranked: dict[str, float] | None = None) -> tuple[bytes, bytes, float] | None:
    """(side: KLT + filter, codestream, squared DN error) of shifted residual ``res`` in ``room`` bytes; None when
    none fits.

    The KLT's component count is chosen by squared error, after filtering the bands where :mod:`layer_filter` pays
    for its bytes, among the counts an HTJ2K layer ranks closest (:func:`_ranked_counts`, since 0.9.1; before, every
    count of :func:`component_choices`, as the KLT + JPEG 2000 anchor does); since 0.8.3 the filter is fitted only
    under the counts within :data:`FILTER_MARGIN` of the closest unfiltered one.
    ``zeros`` (C, H, W): where the base is 0 (nodata, band zeros), which the decode sets to 0 whatever the layer
    holds, so the error there is left out: the error is the decoded file's. ``angle`` (:func:`_file_angle`) is the
    whole file's spectral angle for a decoded residual, which decides between the filter's two fits.
    Each count is coded by AV1, or at few bits a pixel by AV1 and OpenJPEG (:func:`_coders`), each coding a candidate
    of its own: the filter is fitted under every candidate within :data:`FILTER_MARGIN` of the closest, so it may
    reorder the two coders (on the held-out farmland cell at 1/1000 OpenJPEG's layer was closer unfiltered, AV1's
    filtered). ``fast``: HTJ2K codestreams (:func:`_fast_residual`), no filter. ``ranked``: the ranking's closest
    HTJ2K error is written to ``ranked["error"]``, and where ``ranked["bar"]`` is given and that error is above it the
    layer is not coded (None).
    """
    if room < MIN_LAYER_BYTES:
        return None
    if fast:
        return _fast_residual(res, room, valid, zeros)
    with av1.remembering():  # the layer's searches repeat some encodes
        return _default_residual(res, room, valid, zeros, angle, ranked)


def _default_residual(res: np.ndarray, room: int, valid: np.ndarray | None, zeros: np.ndarray,
                      angle: Callable[[np.ndarray], float],
                      ranked: dict[str, float] | None = None) -> tuple[bytes, bytes, float] | None:
    """:func:`_code_residual` of the default effort."""
    target = _float_residual(res)
    reserve = _filter_reserve(room, res.shape[0])
    keep = ~zeros
    coded: list[_Count] = []  # each count and coder that fits, unfiltered
    closest: tuple[int, _Decoded] | None = None  # the closest count's place in ``coded`` and its decode
    ranking = _ranked_counts(res, room, reserve, valid, target, keep)
    if ranked is not None:
        ranked["error"] = ranking.error
        if ranking.error > ranked.get("bar", np.inf):
            return None  # a rival's HTJ2K ranking was closer by the margin: no AV1 layer
    counts, kept = ranking.counts, ranking.kept
    searches: dict[int, dict[str, float]] = {}  # each count's AV1 searches (:func:`_av1_search`)
    full = False  # a coded stream within 2 % of its room: OpenJPEG's sizes can move in steps of a few %
    for i, (k, planes, klt) in enumerate(counts):
        if i >= kept and full:
            break
        want = room - len(klt.to_bytes()) - reserve
        for coder in _coders(want, planes.shape):  # each a candidate: the filter may reorder them
            coded_count = _coded_planes(planes, klt, want, _av1_search(searches, ranking, k), coder)
            if coded_count is None:
                continue
            stream, used = coded_count
            full = full or len(stream) >= 0.98 * want
            decoded = _decoded(stream, used, target.shape)
            coded.append(_Count(planes, klt, used, stream, _residual_error(target, decoded.values, keep)))
            if closest is None or coded[-1].err < coded[closest[0]].err:
                closest = len(coded) - 1, decoded
            del decoded
    if closest is None:
        return None
    least = coded[closest[0]].err
    best: _Coded | None = None
    samples = layer_filter.fit_samples(keep)  # the filter's fit pixels, the same under every candidate
    for i, count in enumerate(coded):
        if count.err <= FILTER_MARGIN * least:  # the closest count's decode is kept, another's made again
            decoded = closest[1] if i == closest[0] else _decoded(count.stream, count.klt, target.shape)
            layer = _filtered_layer(target, count, decoded, room, keep, angle, samples,
                                    searches.get(count.planes.shape[0]))
            if best is None or layer.err < best.err:
                best = layer
    return None if best is None else (best.side, best.stream, best.err)


def _av1_search(searches: dict[int, dict[str, float]], ranking: _Ranking, k: int) -> dict[str, float]:
    """The stats of count ``k``'s AV1 searches in one layer (:func:`av1.av1_at_size`): the first starts at the quality
    of its HTJ2K layer's step (:func:`av1.quality_for_step`; without one, at :func:`av1.first_quality`), the filter's
    smaller rooms where the last search of the count ended."""
    if k not in searches:
        searches[k] = {"quality": av1.quality_for_step(ranking.levels[k])} if k in ranking.levels else {}
    return searches[k]


def _filter_reserve(room: int, bands: int) -> int:
    """Bytes a layer of ``room`` bytes sets aside for its filter: the largest filter where the room is at least
    :data:`FILTER_RESERVE_AT` times it, else the mask alone (:func:`_filtered_layer` codes again smaller when a
    filter does not fit)."""
    most = layer_filter.MASK_BYTES + layer_filter.BAND_BYTES * bands
    return most if room >= FILTER_RESERVE_AT * most else layer_filter.MASK_BYTES


@dataclass(frozen=True)
class _Ranking:
    """A residual's component counts ranked by HTJ2K layers (:func:`_ranked_counts`): (k, planes, KLT) closest first,
    how many of them to code, the closest HTJ2K layer's squared DN error (infinite where HTJ2K coded none) and each
    count's HTJ2K step (where its AV1 search starts)."""

    counts: list[tuple[int, np.ndarray, KLTBasis]]
    kept: int
    error: float
    levels: dict[int, float] = dataclasses.field(default_factory=dict)


def _ranked_counts(res: np.ndarray, room: int, reserve: int, valid: np.ndarray | None, target: np.ndarray,
                   keep: np.ndarray) -> _Ranking:
    """The component counts for a layer in ``room`` bytes (``reserve`` of them set aside for the filter):
    :data:`LAYER_COMPONENTS` (or :func:`component_choices` where the room is small) closest first by the squared
    error of an HTJ2K layer at the same room, :data:`RANKED_KEEP` of them (:data:`RANKED_KEEP_SMALL` in a small room)
    to code. The caller codes the next ones too while no coded stream fills its room within 2 % (OpenJPEG's sizes
    can move in steps: on a 512² crop at 1/450, 6 components came to 13,262 or 13,644 B for a 13,605 B room,
    whatever the rate asked).

    An HTJ2K rate search costs a fraction of one OpenJPEG encode, and its order of the counts is OpenJPEG's (on
    held-out scenes at 1/200-1/1000 its pick coded within 0.1 dB of the best count's OpenJPEG layer), so the
    bytes go to the count that codes closest without an OpenJPEG encode for each. Where HTJ2K cannot code the stack
    (one pixel wide: :func:`htj2k.fits`) or fits no count, the choices of :func:`component_choices` are all coded.
    """
    bands = res.shape[0]
    large = klt_side_bytes(bands, bands) <= 0.05 * room
    choices = tuple(k for k in LAYER_COMPONENTS if k <= bands) if large else component_choices(bands, room)
    if not htj2k.fits(res.shape):
        every = list(klt_forward_each(res, component_choices(bands, room), valid))
        return _Ranking(every, len(every), np.inf)
    counts = list(klt_forward_each(res, choices, valid))
    trials = list(_trials(counts, room, reserve, target, keep, htj2k.FIRST_LEVEL))
    errors = {t.k: t.err for t in trials}
    if not errors:
        every = [c for c in counts if c[0] in component_choices(bands, room)]
        return _Ranking(every, len(every), np.inf)
    counts.sort(key=lambda c: errors.get(c[0], np.inf))  # those HTJ2K could not fit last, in choice order
    return _Ranking(counts, RANKED_KEEP if large else RANKED_KEEP_SMALL, min(errors.values()),
                    {t.k: t.level for t in trials if t.level is not None})


class _Trial(NamedTuple):
    """One component count's layer: the count, its KLT, the codestream, its squared DN error and its HTJ2K step."""

    k: int
    klt: KLTBasis
    stream: bytes
    err: float
    level: float | None


def _trials(counts: Iterable[tuple[int, np.ndarray, KLTBasis]], room: int, reserve: int, target: np.ndarray,
            keep: np.ndarray, level: float | None) -> Iterator[_Trial]:
    """Each count's layer in ``room`` bytes beside its KLT and ``reserve`` more bytes, decoded and compared with
    ``target`` at the ``keep`` pixels: the default layer's ranking and the fast effort's layers. HTJ2K codes them,
    each search starting at the step the last one found (``level`` for the first), or OpenJPEG where ``level`` is
    None (a stack HTJ2K cannot code, :func:`htj2k.fits`). A count that does not fit is left out."""
    stats: dict[str, float] = {} if level is None else {"level": level}
    for k, planes, klt in counts:
        budget = room - len(klt.to_bytes()) - reserve
        stream = (htj2k.htj2k_at_size(planes, budget, stats, first_level=stats["level"]) if stats else
                  j2k_at_size(planes, budget))
        if stream is not None:
            err = _residual_error(target, _decoded_residual(stream, klt, target.shape), keep)
            yield _Trial(k, klt, stream, err, stats.get("level"))


def _coders(room: int, shape: tuple[int, ...]) -> tuple[str, ...]:
    """The coders of the default layer's KLT planes (C, H, W) in ``room`` bytes, each tried and the closer kept:
    AV1 alone where it is sure to be closer (:func:`av1.sure`), AV1 and OpenJPEG at fewer bits a pixel, OpenJPEG
    alone for a stack AV1 cannot code (:func:`av1.fits`) or without :data:`LAYER_AV1`."""
    if not (LAYER_AV1 and av1.fits(shape)):
        return ("jpeg2000",)
    return ("av1",) if av1.sure(room, shape) else ("av1", "jpeg2000")


def _coded_planes(planes: np.ndarray, klt: KLTBasis, room: int, stats: dict[str, float] | None = None,
                  coder: str = "jpeg2000") -> tuple[bytes, KLTBasis] | None:
    """(the codestream of 16-bit KLT ``planes`` within ``room`` bytes by ``coder``, the KLT it decodes with), or None
    when none fits: ``"av1"`` on the planes scaled to 12 bits (:func:`av1.av1_at_size`; ``stats`` shared by the
    searches of one layer, each starting at the quality the last one found), ``"jpeg2000"`` by OpenJPEG."""
    if coder == "av1":
        return av1.av1_at_size(*rescaled(planes, klt, av1.TOP / TOP), room, stats)
    stream = j2k_at_size(planes, room)
    return None if stream is None else (stream, klt)


@dataclass(frozen=True)
class _Count:
    """One KLT component count's layer, unfiltered: its planes and KLT (to code them again smaller), the KLT its
    codestream decodes with (the planes' own, or rescaled for AV1), the codestream and its squared DN error."""

    planes: np.ndarray
    source: KLTBasis
    klt: KLTBasis
    stream: bytes
    err: float

    @property
    def side(self) -> bytes:
        """The KLT side information of the codestream."""
        return self.klt.to_bytes()


@dataclass(frozen=True)
class _Coded:
    """A layer as it would be written: side (KLT + filter), codestream, squared DN error, and the residual it
    decodes to (filtered)."""

    side: bytes
    stream: bytes
    err: float
    decoded: np.ndarray


def _fast_residual(res: np.ndarray, room: int, valid: np.ndarray | None,
                   zeros: np.ndarray) -> tuple[bytes, bytes, float] | None:
    """(side: KLT + no filter, HTJ2K codestream, squared DN error) of shifted residual ``res`` in ``room`` bytes, the
    component count the closest of :data:`FAST_COMPONENTS` (or :func:`component_choices` where the side information
    of all of them is not affordable); None when none fits. A tile one pixel wide or high (the last block of a scene
    1 px past a block edge) is coded by JPEG 2000 instead (:func:`htj2k.fits`)."""
    bands = res.shape[0]
    choices = (tuple(k for k in FAST_COMPONENTS if k <= bands) if klt_side_bytes(bands, bands) <= 0.05 * room
               else component_choices(bands, room))
    target, keep = _float_residual(res), ~zeros
    no_filter = layer_filter.LayerFilter.none(bands).to_bytes()
    level = htj2k.first_level(room, *res.shape[1:]) if htj2k.fits(res.shape) else None
    trials = _trials(klt_forward_each(res, choices, valid, FAST_FIT_PIXELS), room, len(no_filter), target, keep,
                     level)
    best = min(trials, key=lambda t: t.err, default=None)
    return None if best is None else (best.klt.to_bytes() + no_filter, best.stream, best.err)


def _decoded_residual(stream: bytes, klt: KLTBasis, shape: tuple[int, ...]) -> np.ndarray:
    """float32 (C, H, W): the residual (without :data:`SHIFT`) a codestream and its KLT decode to."""
    return _decoded(stream, klt, shape).values


class _Decoded(NamedTuple):
    """A codestream's decoded residual (float32 C, H, W, without :data:`SHIFT`) and the centres a filter of it is
    centred on (C,: :func:`layer_sum.plane_means`, as the decoder of an ``EOEB`` layer takes them)."""

    values: np.ndarray
    means: np.ndarray


def _decoded(stream: bytes, klt: KLTBasis, shape: tuple[int, ...]) -> _Decoded:
    """:func:`_decoded_residual` and its planes' means."""
    planes = layer_planes(stream, klt)
    return _Decoded(layer_sum.residual(planes, klt, SHIFT).reshape(shape), layer_sum.plane_means(planes, klt, SHIFT))


def _float_residual(res: np.ndarray) -> np.ndarray:
    """float32 (C, H, W): the stored residual ``res`` (uint16, + :data:`SHIFT`) in DN, made in one array."""
    return np.subtract(res, SHIFT, dtype=np.float32)


def layer_planes(stream: bytes, klt: KLTBasis) -> np.ndarray:
    """uint16 (k, H, W) KLT planes of a layer's codestream: AV1 (the default layer where it pays, since 0.11), HTJ2K
    (the fast effort's layer) or JPEG 2000."""
    return av1.decode(stream, klt.basis.shape[1]) if av1.is_av1(stream) else htj2k.decode(stream)


def _residual_error(target: np.ndarray, decoded: np.ndarray, keep: np.ndarray) -> float:
    """Squared DN error of a decoded residual (rounded, as the decode rounds it) at the ``keep`` pixels.

    Band by band, without gathering the kept pixels: the differences are whole numbers (exact in float32) and
    their squares' float64 dot product is exact below 2^53, so the sum is the same in any order.
    """
    total = 0.0
    for band, want, ok in zip(decoded, target, keep, strict=True):
        diff = np.rint(band)
        diff -= want
        diff[~ok] = 0.0
        flat = diff.ravel().astype(np.float64)
        total += float(flat @ flat)
    return total


def _filtered_layer(target: np.ndarray, count: _Count, decoded: _Decoded, room: int, keep: np.ndarray,
                    angle: Callable[[np.ndarray], float], samples: layer_filter.Samples,
                    searches: dict[str, float] | None = None) -> _Coded:
    """The layer of ``count`` (whose codestream decodes to ``decoded``) with the filter of the bands where it pays.

    The filter is fitted two ways (:func:`layer_filter.fit`): taps that sum to one, which never move a flat
    region's level, and free taps, which may also scale a band's contrast. The free layer is kept only when it is
    closer **and** the whole file's mean spectral angle (``angle``) is no wider than with the taps that sum to one
    (or than unfiltered, when those do not pay): on training scenes this took the better of the two fits on all 20
    scene-rates with a layer (``benchmarks/imagery/layer_filter.py``). Either filter is kept only when it is closer
    than the count's codestream unfiltered at the full room. ``samples``: the fit's pixels
    (:func:`layer_filter.fit_samples` of ``keep``), drawn once per layer.
    """
    plain = _Coded(count.side + layer_filter.LayerFilter.none(target.shape[0]).to_bytes(), count.stream, count.err,
                   decoded.values)
    fits = layer_filter.fit(decoded.values, target, keep, samples, decoded.means)
    smaller: dict[int, tuple[tuple[bytes, KLTBasis], _Decoded, tuple[layer_filter.Fit, layer_filter.Fit]] | None] = {}
    unit, free = (_with_filter(kind, fits, plain, decoded.means, count, room, target, keep, smaller, samples,
                               searches)
                  for kind in (0, 1))
    if free.err < unit.err and angle(free.decoded) <= angle(unit.decoded):
        return free
    return unit


def _with_filter(kind: int, fits: tuple[layer_filter.Fit, layer_filter.Fit], plain: _Coded, means: np.ndarray,
                 count: _Count, room: int, target: np.ndarray, keep: np.ndarray, smaller: dict[int, Any],
                 samples: layer_filter.Samples, searches: dict[str, float] | None = None) -> _Coded:
    """The layer of ``count`` with fit ``kind`` (0: taps that sum to one, 1: free), or ``plain`` (the count
    unfiltered, whose planes' means are ``means``) when none of its bands pays or it is not closer.

    The filter's bytes come out of the codestream's room: when they do not fit beside ``plain``'s codestream the
    planes are coded again that much smaller (``smaller`` keeps each size's codestream, decode and fits for the
    other kind) and the filter fitted again.
    """
    stream, decoded, side = plain.stream, plain.decoded, count.side
    chosen = layer_filter.choose(fits[kind].filter, fits[kind].gains, plain.err, len(stream))
    if not chosen.on.any():
        return plain
    filter_bytes = len(chosen.to_bytes())
    if len(count.side) + len(stream) + filter_bytes > room:
        if filter_bytes not in smaller:
            got = _coded_planes(count.planes, count.source, room - len(count.side) - filter_bytes, searches,
                                "av1" if av1.is_av1(count.stream) else "jpeg2000")  # the count's own coder
            if got is None:
                smaller[filter_bytes] = None
            else:
                redecoded = _decoded(got[0], got[1], target.shape)
                smaller[filter_bytes] = got, redecoded, layer_filter.fit(redecoded.values, target, keep, samples,
                                                                         redecoded.means)
        if smaller[filter_bytes] is None:
            return plain
        (stream, klt), (decoded, means), refits = smaller[filter_bytes]
        side = klt.to_bytes()
        chosen = layer_filter.LayerFilter(refits[kind].filter.taps, chosen.on)
    filtered = layer_sum.filtered_residual(decoded, chosen, means)
    err = _residual_error(target, filtered, keep)
    return _Coded(side + chosen.to_bytes(), stream, err, filtered) if err < plain.err else plain


def _file_angle(data: np.ndarray, base: np.ndarray, offset: int,
                valid: np.ndarray | None) -> Callable[[np.ndarray], float]:
    """The mean spectral angle (degrees; :func:`spectral_angle_deg` on reflectance with ``offset``, as the
    benchmarks measure it) against ``data`` of the file ``base`` + a decoded residual (float (C, H, W), without
    :data:`SHIFT`) decodes to, over a fixed random sample (:func:`layer_filter.sample_pixels`) of the pixels valid
    and not nodata in the base: two layers are compared on the same pixels, in bounded memory. The sample is drawn
    on the first call: most layers never need an angle (no fit pays, or the free one is not closer)."""
    bands = data.shape[0]

    @functools.cache
    def sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ok = np.all(base != 0, axis=0)
        if valid is not None:
            ok = ok & valid
        pixels = layer_filter.sample_pixels(np.flatnonzero(ok), np.random.default_rng(0))
        original = reflectance_dn(data.reshape(bands, -1)[:, pixels], offset)[:, None]
        return pixels, original, base.reshape(bands, -1)[:, pixels].astype(np.float64)

    def angle(residual: np.ndarray) -> float:
        pixels, original, under = sample()
        if not pixels.size:
            return 0.0
        picked = residual.reshape(bands, -1)[:, pixels]  # a copy: rounded in place
        decoded = np.rint(picked, out=picked).astype(np.float64)
        decoded += under
        np.clip(decoded, 1, 65535, out=decoded)
        return spectral_angle_deg(original, reflectance_dn(decoded, offset, in_place=True)[:, None])

    return angle


def read_side(side: bytes, bands: int, filtered: bool) -> tuple[KLTBasis, layer_filter.LayerFilter]:
    """(KLT, filter) of a layer's side: the KLT then, since 0.8 (``filtered``), the filter; one line when damaged."""
    klt = KLTBasis.from_bytes(side, bands)
    n = klt_side_bytes(bands, klt.basis.shape[1])
    if not filtered:
        if len(side) != n:
            raise FileFormatError("the enhancement layer's KLT side has stray bytes; the file is damaged")
        return klt, layer_filter.LayerFilter.none(bands)
    return klt, layer_filter.LayerFilter.from_bytes(side[n:], bands)


def _enhanced_in_place(base: np.ndarray, side: bytes, stream: bytes, filtered: bool,
                       centred: bool = False) -> np.ndarray:
    """uint16 ``base`` (C, H, W) + the residual of one coded layer (side + codestream), clipped to 1..65535,
    nodata (0 in the base) kept 0, written into ``base`` strip by strip (:func:`layer_sum.add_layer`); one line when
    the layer is damaged. ``filtered``: the side ends with the layer filter (layers written since 0.8);
    ``centred``: the filter centres the bands on their planes' means (``EOEB``/``EOEC``, since 0.12.2)."""
    klt, filt = read_side(side, base.shape[0], filtered)
    planes = layer_planes(stream, klt)
    if planes.shape[0] != klt.basis.shape[1] or planes.shape[1:] != base.shape[1:]:
        raise FileFormatError(f"enhancement layer holds {planes.shape}, the base is {base.shape}; the file is damaged")
    return layer_sum.add_layer(base, planes, klt, filt, SHIFT, centre_on_planes=centred)


def _checked(blob: bytes) -> bytes:
    """``blob`` when it is an enhancement-layer file whose CRC holds; else one line."""
    blob = bytes(blob)
    if not is_enhanced(blob):
        raise FileFormatError(
            f"not an enhancement-layer file (magic {blob[:4]!r}, expected one of {WHOLE + TILED!r})"
        )
    if len(blob) < OVERHEAD or struct.unpack("<I", blob[-4:])[0] != zlib.crc32(blob[:-4]):
        raise FileFormatError("the enhancement-layer file is damaged or truncated (CRC mismatch); encode it again")
    return blob


def split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """(base token file, KLT side, codestream) of a whole-scene layer file; one line when it is damaged."""
    blob = _checked(blob)
    if blob[:4] not in WHOLE:
        raise FileFormatError("a tiled enhancement layer has a side and a codestream per tile; use split_tiled")
    (n,) = struct.unpack_from("<I", blob, 4)
    base = blob[8 : 8 + n]
    (s,) = struct.unpack_from("<H", blob, 8 + n)
    side = blob[10 + n : 10 + n + s]
    return base, side, blob[10 + n + s : -4]


def split_tiled(blob: bytes) -> tuple[bytes, list[tuple[tuple[int, int, int, int], bytes, bytes]]]:
    """(base token file, [(window, KLT side, codestream) per tile]) of a tiled layer file; one line when damaged."""
    blob = _checked(blob)
    if blob[:4] not in TILED:
        raise FileFormatError("not a tiled enhancement layer (EOE4, EOE2); use split")
    try:
        (n,) = struct.unpack_from("<I", blob, 4)
        base = blob[8 : 8 + n]
        pos = 8 + n
        (count,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        records = [struct.unpack_from("<IIIIHI", blob, pos + i * TILE_RECORD) for i in range(count)]
    except struct.error as exc:
        raise FileFormatError(f"the tiled enhancement layer is damaged ({exc}); encode it again") from exc
    pos += count * TILE_RECORD
    tiles = []
    for r, c, h, w, s, m in records:
        tiles.append(((r, c, h, w), blob[pos : pos + s], blob[pos + s : pos + s + m]))
        pos += s + m
    if pos != len(blob) - 4:
        raise FileFormatError("the tiled enhancement layer's tile lengths do not add up; the file is damaged")
    return base, tiles


def base_and_layer_bytes(blob: bytes) -> tuple[bytes, int]:
    """(base token file, bytes of the layer's sides and codestreams) of an enhancement-layer file, either kind."""
    if is_tiled(blob):
        base, tiles = split_tiled(blob)
        return base, sum(len(side) + len(stream) for _, side, stream in tiles)
    base, side, stream = split(blob)
    return base, len(side) + len(stream)


def layer_streams(blob: bytes) -> list[bytes]:
    """The codestreams of a layer file: one, or one a tile of a tiled layer (empty where a tile has none)."""
    return [stream for _, _, stream in split_tiled(blob)[1]] if is_tiled(blob) else [split(blob)[2]]


def layer_coder(blob: bytes) -> str:
    """What codes an enhancement-layer file's residual: ``"AV1"`` (the default effort's layer since 0.11, where its
    room is large), ``"HTJ2K"`` (the fast effort) or ``"JPEG 2000"``; coders joined by " + " where tiles differ."""
    names = {"AV1" if av1.is_av1(s) else "HTJ2K" if htj2k.is_htj2k(s) else "JPEG 2000" for s in layer_streams(blob)
             if s}
    return " + ".join(sorted(names)) or "JPEG 2000"


def decode_layer(codec: Any, blob: bytes, source: str = "token file") -> tuple[bytes, np.ndarray]:
    """(base token file, uint16 (C, H, W)) of an enhanced file: base decode + residual, in the base's convention.

    A tiled layer (``EOE4``, ``EOE2``) is filled into the output block by block (:func:`decode_layer_blocks`), so the
    peak is the output plus one block, not a float copy of the whole scene.
    """
    if is_tiled(blob):
        base_blob, pieces = decode_layer_blocks(codec, blob, source)
        head, _ = codec.read_header(base_blob, source)
        out = np.empty((len(codec.bands), head.height, head.width), np.uint16)
        for (r, c, h, w), block in pieces:
            out[:, r : r + h, c : c + w] = block
        return base_blob, out
    base_blob, side, stream = split(blob)
    base = np.asarray(codec.decode(base_blob, source))
    return base_blob, _enhanced_in_place(base, side, stream, is_filtered(blob), is_plane_centred(blob))


def decode_layer_blocks(
    codec: Any, blob: bytes, source: str = "token file"
) -> tuple[bytes, Iterator[tuple[tuple[int, int, int, int], np.ndarray]]]:
    """(base token file, the decoded scene block by block) of an enhanced file, for a windowed writer.

    A tiled layer is decoded one base block (``codec.decode_blocks``) + its residual at a time; a
    whole-scene layer (``EOE3``, ``EOE1``: only ever written for scenes held in memory) is decoded whole, one block.
    """
    if not is_tiled(blob):
        base_blob, data = decode_layer(codec, blob, source)
        return base_blob, iter([((0, 0, data.shape[1], data.shape[2]), data)])
    base_blob, tiles = split_tiled(blob)
    layers = {win: (side, stream) for win, side, stream in tiles}
    filtered, centred = is_filtered(blob), is_plane_centred(blob)

    def enhanced(win: tuple[int, int, int, int], base: np.ndarray) -> np.ndarray:
        side, stream = layers[win]
        return _enhanced_in_place(base, side, stream, filtered, centred) if stream else base

    def blocks() -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
        pieces = codec.decode_blocks(base_blob, source)
        first = next(pieces)
        if first[0] in layers:  # the encoder's block layout: each base block decoded once, with its tile
            for win, base in itertools.chain([first], pieces):
                if win not in layers:
                    raise FileFormatError(f"{source}: the enhancement layer has no tile at {win}; the file is damaged")
                yield win, enhanced(win, base)
            return
        # another block layout than the encoder's (another release): each tile's base as a window (within 1 DN)
        for win in layers:
            yield win, enhanced(win, np.asarray(codec.decode(base_blob, source, window=win)))

    return base_blob, blocks()


@no_stalling_hugepages
def encode_with_layer(codec: Any, scene: Any, *, ratio: float | None = None, quality: int | None = None,
                      refine_steps: int = 0, layer: bool = True, effort: str = "default") -> bytes:
    """What ``imagery encode`` writes for a scene: the learned ``codec``'s token file at ``ratio`` or ``quality``,
    or a cheaper base plus a residual layer when that is closer (:func:`enhance`; tiled when ``scene`` is read
    by windows; a discrete-quantizer model has one rate and no layer; ``layer=False``: the token file alone).
    ``effort="fast"``: :func:`encode_fast` (a ratio and a layer only)."""
    check_effort(effort, ratio=ratio, quality=quality, refine_steps=refine_steps, layer=layer)
    encode_at = codec.scene_encoder(scene, keep_pixels=bool(refine_steps))
    searched = functools.partial(encode_at, ratio=ratio, quality=quality, refine_steps=refine_steps)
    if not layer or quality is not None or ratio is None or codec.config.discrete:
        return searched()
    budget = int(len(codec.bands) * scene.shape[0] * scene.shape[1] * 2 // ratio)
    if effort == "fast":
        return encode_fast(codec, scene, searched, budget, encode_at)
    if not isinstance(scene, Scene):  # the whole scene's rate search runs only if the layer does not win
        return enhance_windows(codec, scene, searched, budget, encode_at)
    return enhance(codec, scene, searched(), budget, encode_at=encode_at)


def encode_fast(codec: Any, scene: Any, searched: Callable[[], bytes], budget: int,
                encode_at: Callable[..., bytes]) -> bytes:
    """The fast effort's file for ``budget`` bytes: the header-only base (the band means: the network never runs)
    and the residual as one HTJ2K layer (tiled when ``scene`` is read by windows), no filter; ``searched()`` (the
    learned rate search) only where no layer fits (a budget of a few hundred bytes).

    The same token file, layout and decoder as the default effort's files (OpenJPEG decodes the HTJ2K codestream
    too), so releases that predate the fast effort read them.
    """
    if not isinstance(scene, Scene):
        return enhance_windows(codec, scene, searched, budget, encode_at, fast=True)
    sel = scene.select(list(codec.bands))
    base_blob = _base_file(encode_at, len(codec.bands) * sel.shape[0] * sel.shape[1] * 2, budget, 0.0)
    got = None if base_blob is None else _layer(np.asarray(sel.data), base_blob, np.asarray(codec.decode(base_blob)),
                                                 budget, sel.valid, int(sel.offset), fast=True)
    return searched() if got is None else got[0]


def token_file(blob: bytes) -> bytes:
    """The learned token file of what ``imagery encode`` wrote: ``blob`` itself, or the base under its layer
    (the layer's CRC checked)."""
    return base_and_layer_bytes(blob)[0] if is_enhanced(blob) else blob


def verify(codec: Any, blob: bytes, source: str = "token file") -> None:
    """Check a file ``imagery encode`` wrote, with or without a layer: CRCs, model and the base's whole payload."""
    base = token_file(blob)
    head, _ = codec.read_header(base, source)
    if head.has_tokens:
        codec.tokens(base, source)


@no_stalling_hugepages
def decode_to_geotiff(codec: Any, blob: bytes, path: Any, source: str = "token file",
                      overwrite: bool = False) -> Any:
    """Decode a file ``imagery encode`` wrote (with or without a layer) to a COG, block by block."""
    if not is_enhanced(blob):
        return codec.decode_to_geotiff(blob, path, source=source, overwrite=overwrite)
    base_blob, pieces = decode_layer_blocks(codec, blob, source)
    head, _ = codec.read_header(base_blob, source)
    return write_geotiff_windows(path, (len(codec.bands), head.height, head.width), codec.header_meta(head), pieces,
                                 overwrite=overwrite)


def at_top_rate(codec: Any, blob: bytes) -> bool:
    """True when the token file ``blob`` is at or above the ladder's top rate (step <= the model's ``delta_min``)."""
    head, _ = codec.read_header(blob)
    return float(head.delta) <= float(np.float32(codec.config.delta_min)) * 1.0001


def near_top_rate(codec: Any, blob: bytes) -> bool:
    """True when the token file ``blob``'s step is at or below ladder level :data:`NEAR_TOP_LEVEL`'s: near the
    autoencoder's floor, where more bytes for the base buy little and a residual layer may buy more."""
    return _at_or_above_level(codec, blob, NEAR_TOP_LEVEL)


def _at_or_above_level(codec: Any, blob: bytes, quality: int) -> bool:
    """True when the token file ``blob``'s step is at or below ladder level ``quality``'s (as fine or finer)."""
    head, _ = codec.read_header(blob)
    return float(head.delta) <= codec.delta_for_quality(quality) * 1.0001


def _squared_error(data: np.ndarray, decoded: np.ndarray) -> float:
    """Squared DN error of a decode, as :func:`_layer` counts it (nodata, 0 in the decode, left out)."""
    return squared_dn_error(data, decoded, skip=decoded == 0)


def enhance(codec: Any, scene: Any, blob: bytes, budget: int, top_quality: int = 10,
            encode_at: Callable[..., bytes] | None = None) -> bytes:
    """``blob`` (the learned ``codec``'s rate search for ``budget``), or a cheaper base + layer when that is closer.

    At every rate the thin base of :data:`BASE_SHARE` (the smallest file) gets the residual in the rest of the bytes:
    where the network codes a scene worse than a linear spectral transform (cloud, bright ground, most whole L1C
    scenes) the residual's KLT + AV1 spends the bytes better. Near the top of the ladder (:func:`near_top_rate`) the
    autoencoder's floor makes base bytes cheap in fidelity, so the learned bases of :data:`LAYER_BASE_LEVELS` get the
    residual too (:func:`_closest`). The whole file with the smallest squared DN error is kept, ``blob`` itself
    included, so a layer is only ever chosen when it is closer; where the rate search reached the ladder's top
    (``top_quality``, the smallest trained step) and nothing else is closer, the top rung's file is kept when it is
    larger and fits.
    ``encode_at`` is the codec's :meth:`scene_encoder` of ``scene`` when the caller has it (the analysis
    transform then runs once for every base).
    """
    if encode_at is None:
        encode_at = codec.scene_encoder(scene)
    if not isinstance(scene, Scene):  # a scene read window by window: a tiled layer, block by block
        return enhance_windows(codec, scene, lambda: blob, budget, encode_at, top_quality)
    sel = scene.select(list(codec.bands))
    raw = len(codec.bands) * sel.shape[0] * sel.shape[1] * 2

    def base_of(base: int | float) -> bytes | None:
        return _base_file(encode_at, raw, budget, base)

    _, best, _ = _closest(codec, np.asarray(sel.data), sel.valid, int(sel.offset), budget, blob, base_of,
                          _bases(codec, blob, top_quality))
    if best is blob and at_top_rate(codec, blob):
        top = encode_at(quality=top_quality)
        if len(blob) < len(top) <= budget:
            return top  # the search's file is smaller than the top rung's and nothing else was closer
    return best


def _bases(codec: Any, blob: bytes, top_quality: int = 10) -> tuple[int | float, ...]:
    """Bases tried under a layer, the thin one first: the share of the budget :data:`BASE_SHARE` (float) at every
    rate; near the top rate (:func:`near_top_rate`) also the ladder levels (int) of :data:`LAYER_BASE_LEVELS` below
    ``top_quality``. Each file keeps whichever is closest (the rate search's file alone included)."""
    if near_top_rate(codec, blob):
        return (BASE_SHARE, *(q for q in LAYER_BASE_LEVELS if q < top_quality))
    return (BASE_SHARE,)


def _base_file(encode_at: Callable[..., bytes], raw: int, budget: int, base: int | float) -> bytes | None:
    """The base file: ladder level ``base`` (int, ``encode_at(quality=…)``), or the learned file at that share of
    ``budget`` (float, ``encode_at(ratio=…)`` of ``raw`` bytes; the smallest one the codec makes when none is that
    small), or the header alone when the share is 0 (no tokens: the band means); None when not even that leaves
    room for a layer."""
    if not isinstance(base, float):
        return encode_at(quality=base)
    if base > 0:
        try:
            return encode_at(ratio=raw / max(1.0, budget * base))
        except InputError:
            thin = encode_at(smallest=True)  # below the smallest file the codec makes: that file
    else:
        thin = encode_at(means_only=True)
    return thin if _leaves_room(thin, budget) else None


def _leaves_room(base_blob: bytes, budget: int) -> bool:
    """True when a base file leaves room in ``budget`` for a layer of at least :data:`MIN_LAYER_BYTES`."""
    return len(base_blob) + OVERHEAD + MIN_LAYER_BYTES <= budget


def ranking_bar(thin_error: float) -> float:
    """The HTJ2K ranking error under which a learned base's residual gets its AV1 layer, where the thin base's ranked
    at ``thin_error``: :data:`LEARNED_RANKING_MARGIN_DB` closer."""
    return thin_error / 10 ** (LEARNED_RANKING_MARGIN_DB / 10)


def _closest(codec: Any, data: np.ndarray, valid: np.ndarray | None, offset: int, budget: int, plain: bytes,
             base_of: Callable[[Any], bytes | None],
             bases: tuple[int | float, ...]) -> tuple[int | float | None, bytes, float]:
    """Of the rate search's file ``plain`` and, for each of ``bases``, the base file ``base_of(base)`` plus the
    residual layer in the rest of ``budget``: the one closest to ``data`` by squared DN error, a learned base's file
    only where it is :data:`LEARNED_BASE_MARGIN_DB` closer than the others, as (its base, None for ``plain``; the
    file; the error). A learned base's AV1 layer is coded only where its HTJ2K ranking is
    :data:`LEARNED_RANKING_MARGIN_DB` closer than the thin base's (``bases`` lists the thin base first). Each base's
    decode is let go before the next base is made."""
    margin = 10 ** (LEARNED_BASE_MARGIN_DB / 10)
    best: tuple[int | float | None, bytes, float] = (None, plain,
                                                      _squared_error(data, np.asarray(codec.decode(plain))))
    weighed = best[2]  # the best file's error, a learned base's times the margin
    bar = np.inf  # the HTJ2K ranking error a learned base's residual must be under for its AV1 layer
    for base in bases:
        base_blob = base_of(base)
        if base_blob is None or not _leaves_room(base_blob, budget):
            continue
        ranked = {} if base == BASE_SHARE else {"bar": bar}
        got = _layer(data, base_blob, np.asarray(codec.decode(base_blob)), budget, valid, offset, ranked=ranked)
        if base == BASE_SHARE and "error" in ranked:
            bar = ranking_bar(ranked["error"])
        weight = margin if base != BASE_SHARE else 1.0
        if got is not None and got[1] * weight < weighed:
            best, weighed = (base, got[0], got[1]), got[1] * weight
    return best


def enhance_windows(codec: Any, scene: Any, searched: Callable[[], bytes], budget: int,
                    encode_at: Callable[..., bytes], top_quality: int = 10, fast: bool = False) -> bytes:
    """:func:`enhance` for a scene read window by window (``SceneWindows``): a tiled layer (``EOE4``).

    The base (a ladder level or a share of the budget) is the one :func:`enhance` picks on the scene's centre
    window of at most :data:`LEVEL_WINDOW` px, among the bases the centre's own rate search calls for
    (:func:`_bases`); that base is then encoded streamed and each of its decoded blocks gets the residual of the
    same pixels, read from the scene, in its share of the bytes. ``searched()`` is the whole scene's rate-search
    file, returned where the layer does not win: it is only made then, so where the base is the header alone
    the network never runs over the whole scene (a 2000 px scene's encode took 2 s less of 17). Memory is bounded
    by a block (1024 px, ~0.5 GB at 12 bands), whatever the scene's size. ``fast``: the header-only base, no
    centre search, HTJ2K tiles (:func:`encode_fast`).
    """
    sel = scene.select(list(codec.bands))
    height, width = sel.shape
    base = 0.0 if fast else _base_on_centre(codec, sel, budget, top_quality)
    if base is None:  # on the centre window the rate search's file alone was closest
        return searched()
    base_blob = _base_file(encode_at, len(codec.bands) * height * width * 2, budget, base)
    if base_blob is None:
        return searched()
    tiles = len(block_windows(height, width))  # the base's decode blocks: one tile each
    room = budget - len(base_blob) - OVERHEAD - 4 - tiles * TILE_RECORD
    records, payload, coded = [], [], 0
    for win, base in codec.decode_blocks(base_blob):
        r, c, h, w = win
        valid = base[0] != 0  # the base's nodata (0 in every band) is the scene's
        share = int(room * h * w // (height * width))
        data = sel.read(r, c, h, w)
        got = _code_residual(residual_of(data, base), share, valid, base == 0,
                             _file_angle(data, base, int(sel.offset), valid), fast)
        side, stream = (got[0], got[1]) if got is not None else (b"", b"")
        coded += bool(stream)
        records.append(struct.pack("<IIIIHI", r, c, h, w, len(side), len(stream)))
        payload += [side, stream]
    if not coded:  # no tile had room for a codestream: the rate search's file
        return searched()
    magic = _magic(payload[1::2], tiled=True, centred=any(_filters(side, len(codec.bands)) for side in payload[::2]))
    body = (magic + struct.pack("<I", len(base_blob)) + base_blob + struct.pack("<I", len(records))
            + b"".join(records) + b"".join(payload))
    return body + struct.pack("<I", zlib.crc32(body))


def _base_on_centre(codec: Any, scene: Any, budget: int, top_quality: int) -> int | float | None:
    """The base :func:`enhance` picks on the centre window of a windowed ``scene`` (its share of ``budget``), among
    those the window's rate search calls for (:func:`_bases`); None when that search's file alone is closer there."""
    height, width = scene.shape
    h, w = min(height, LEVEL_WINDOW), min(width, LEVEL_WINDOW)
    r, c = (height - h) // 2, (width - w) // 2
    budget = budget * h * w // (height * width)
    data = np.asarray(scene.read(r, c, h, w))
    offset = int(scene.offset) if scene.meta.get("offset_known", True) else None
    encode_at = codec.windows_encoder(lambda r0, c0, hh, ww: data[:, r0 : r0 + hh, c0 : c0 + ww], data.shape,
                                      offset=offset)
    plain = encode_at(ratio=data.nbytes / budget)
    bases = _bases(codec, plain, top_quality)

    def base_of(base: int | float) -> bytes | None:
        return _base_file(encode_at, data.nbytes, budget, base)

    base, _, _ = _closest(codec, data, np.all(data != 0, axis=0), int(scene.offset), budget, plain, base_of,
                          bases)
    return base
