"""The per-scene spectral transform (KLT) in front of the learned codec, shared by training and the codec.

A model trained with ``spectral="klt"`` does not see the 12 standardised bands but their principal
components over the scene (or training crop): each scene gets its own decorrelating rotation, so
ground whose spectra the network rarely met (brine, snow, cloud) reaches it in the same canonical
form as farmland. The token file stores the rotation and the decoder inverts exactly the stored one,
so what the network saw and what the decoder undoes are the same numbers.

Two stored forms (:class:`Rotation`):

- ``givens`` (written since 0.6): the eigenvector matrix as C(C-1)/2 plane (Givens) rotations, each
  angle a 9-bit step of 2π/512, then one bit for the determinant, packed: 75 bytes for 12 bands, an
  exactly orthogonal matrix. Angles are quantised with error feedback (each later angle sees the rounded
  earlier ones). The components stay as decorrelated as under the int8 entries (the weakest ones at most
  ~1 % above their own variance on desert, city and water scenes); 8-bit angles left the weakest
  component of a desert scene 19 % too strong, 10-bit ones cost 8 bytes more for no measurable gain.
- ``entries`` (files before 0.6): the matrix entries as int8 steps of 1/127, 144 bytes; the rounding
  leaves it not quite orthonormal, which the exact inverse absorbs.

The Givens form saves 69 bytes a file: 9 % of a 120 px patch's budget at 1/450, 20 % at 1/1000, and
it lets a 120 px patch reach 1/2000 (a 170 B smallest file against a 172 B budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from eocompress._blas import single_threaded_blas

#: The spectral front ends a model may have: the standardised bands as they are, or their KLT.
SPECTRAL = ("bands", "klt")
#: Stored forms of a rotation: plane-rotation angles (written now) and int8 entries (read, files before 0.6).
FORMS = ("givens", "entries")
#: int8 steps per unit of an eigenvector entry (entries lie in [-1, 1]) in the ``entries`` form.
KLT_STEPS = 127
#: Bits per angle in the ``givens`` form, and the angle steps per turn they give.
ANGLE_BITS = 9
ANGLE_STEPS = 1 << ANGLE_BITS


def second_moment(z: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """float64 (C, C) sum of z z^T over the valid pixels of standardised (C, H, W) ``z`` (a block of a scene)."""
    pix = z.reshape(z.shape[0], -1)
    if valid is not None:
        pix = pix[:, np.asarray(valid, bool).ravel()]
    pix = pix.astype(np.float64)
    return pix @ pix.T


def eigenvectors(moment: np.ndarray) -> np.ndarray:
    """float64 (C, C) eigenvectors of ``moment`` as columns, strongest first, each signed with its largest entry > 0."""
    moment = np.asarray(moment, np.float64)
    if not np.all(np.isfinite(moment)):
        raise ValueError("the spectral second moment holds non-finite values")
    values, vectors = np.linalg.eigh((moment + moment.T) / 2)
    vectors = vectors[:, np.argsort(-values, kind="stable")]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    return vectors * np.where(signs == 0, 1.0, signs)


def klt_matrix(moment: np.ndarray) -> np.ndarray:
    """int8 (C, C) :func:`eigenvectors` of ``moment`` in the ``entries`` form (steps of 1/127)."""
    return np.clip(np.rint(eigenvectors(moment) * KLT_STEPS), -KLT_STEPS, KLT_STEPS).astype(np.int8)


def givens_codes(vectors: np.ndarray) -> np.ndarray:
    """int16 angle codes (-256..255, C(C-1)/2) of an orthogonal (C, C) matrix, then 0/1 for a determinant of +1/-1.

    Column by column, from the bottom up, a rotation of rows (i-1, i) zeroes entry i: its angle is
    rounded to a step of 2π/512 and the *rounded* rotation is applied, so later angles absorb earlier
    rounding. What is left is diagonal, +1 down to the last entry (each rotation makes its top entry >= 0),
    which is the determinant.
    """
    r = np.array(vectors, np.float64)
    n = r.shape[0]
    step = 2 * np.pi / ANGLE_STEPS
    codes = []
    for col in range(n):
        for row in range(n - 1, col, -1):
            k = int(np.rint(np.arctan2(r[row, col], r[row - 1, col]) / step))
            k = (k + ANGLE_STEPS // 2) % ANGLE_STEPS - ANGLE_STEPS // 2
            c, s = np.cos(k * step), np.sin(k * step)
            r[[row - 1, row]] = np.array([[c, s], [-s, c]]) @ r[[row - 1, row]]
            codes.append(k)
    codes.append(0 if r[n - 1, n - 1] > 0 else 1)
    return np.array(codes, np.int16)


def pack_givens(codes: np.ndarray) -> bytes:
    """The angle codes as 9-bit two's-complement fields (most significant bit first), then the determinant bit."""
    fields = np.asarray(codes[:-1], np.int64) & (ANGLE_STEPS - 1)
    bits = (fields[:, None] >> np.arange(ANGLE_BITS - 1, -1, -1)) & 1
    return np.packbits(np.append(bits.ravel(), int(codes[-1]) & 1).astype(np.uint8)).tobytes()


def unpack_givens(data: bytes, angles: int) -> np.ndarray:
    """int16 angle codes and the determinant bit of :func:`pack_givens`' bytes."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    weights = 1 << np.arange(ANGLE_BITS - 1, -1, -1)
    fields = bits[: angles * ANGLE_BITS].reshape(angles, ANGLE_BITS).astype(np.int64) @ weights
    fields = np.where(fields >= ANGLE_STEPS // 2, fields - ANGLE_STEPS, fields)
    return np.append(fields, bits[angles * ANGLE_BITS]).astype(np.int16)


def givens_matrix(codes: np.ndarray, bands: int) -> np.ndarray:
    """float64 (C, C) orthogonal matrix of :func:`givens_codes` (the rotations undone in reverse order).

    Remembered for the last files' codes (read-only): a decode reads its file's header twice, and 66 plane rotations
    in Python took 0.5 ms each time, a tenth of a 120 px patch's decode."""
    return _givens_matrix(np.asarray(codes, np.int64).tobytes(), bands)


@lru_cache(maxsize=64)
def _givens_matrix(codes_bytes: bytes, bands: int) -> np.ndarray:
    """:func:`givens_matrix` of int64 codes as bytes."""
    codes = np.frombuffer(codes_bytes, np.int64)
    step = 2 * np.pi / ANGLE_STEPS
    r = np.eye(bands)
    r[-1, -1] = -1.0 if codes[-1] else 1.0
    k = len(codes) - 2
    for col in range(bands - 1, -1, -1):
        for row in range(col + 1, bands):
            c, s = np.cos(codes[k] * step), np.sin(codes[k] * step)
            r[[row - 1, row]] = np.array([[c, -s], [s, c]]) @ r[[row - 1, row]]
            k -= 1
    r.setflags(write=False)
    return r


def _product(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``matrix @ x`` on one BLAS thread (:func:`single_threaded_blas`: the same numbers). Right after the network's
    synthesis torch's OpenMP threads still spin on both cores, and waking BLAS's own pool beside them took 1-8 ms
    per call, against 0.2 ms on one thread (a third of a 120 px patch's decode); a large block's product is
    memory-bound, as fast on one thread."""
    with single_threaded_blas():
        return matrix @ x


@dataclass(frozen=True, eq=False)
class Rotation:
    """A scene's spectral rotation as a token file stores it (``form``, ``codes``) and the matrices it stands for."""

    form: str
    codes: np.ndarray  # int8 (C, C) entries, or int16 C(C-1)/2 angle codes + the determinant (0/1)
    bands: int

    @classmethod
    def of_moment(cls, moment: np.ndarray, form: str = "givens") -> Rotation:
        """The KLT of a scene's (or crop's) second moment, stored in ``form``."""
        if form == "entries":
            return cls(form, klt_matrix(moment), moment.shape[0])
        return cls(form, givens_codes(eigenvectors(moment)), moment.shape[0])

    @staticmethod
    def nbytes(form: str, bands: int) -> int:
        """Bytes the rotation takes in a token file."""
        return bands * bands if form == "entries" else -(-(bands * (bands - 1) // 2 * ANGLE_BITS + 1) // 8)

    @classmethod
    def from_bytes(cls, data: bytes, pos: int, bands: int, form: str) -> Rotation:
        """The rotation stored at ``pos``; ValueError when it is cut short, forged or singular."""
        n = cls.nbytes(form, bands)
        if len(data) < pos + n:
            raise ValueError("the spectral transform is cut short")
        if form == "entries":
            codes = np.frombuffer(data, np.int8, n, pos).reshape(bands, bands).copy()
        else:
            codes = unpack_givens(data[pos : pos + n], bands * (bands - 1) // 2)
        rotation = cls(form, codes, bands)
        rotation.inverse_matrix  # noqa: B018  (a singular, forged matrix is refused here, not mid-decode)
        return rotation

    def to_bytes(self) -> bytes:
        """The codes as the token file stores them."""
        if self.form == "entries":
            return np.ascontiguousarray(self.codes, np.int8).tobytes()
        return pack_givens(self.codes)

    @cached_property
    def matrix64(self) -> np.ndarray:
        """float64 (C, C) matrix the codes stand for, components as columns."""
        if self.form == "entries":
            return self.codes.astype(np.float64) / KLT_STEPS
        return givens_matrix(self.codes, self.bands)

    @cached_property
    def matrix(self) -> np.ndarray:
        """float32 (C, C) forward matrix, components as columns: y = matrix^T z (entries: as files before 0.6 did)."""
        if self.form == "entries":
            return self.codes.astype(np.float32) / np.float32(KLT_STEPS)
        return self.matrix64.astype(np.float32)

    @cached_property
    def inverse_matrix(self) -> np.ndarray:
        """float32 (C, C) exact inverse of the forward rotation (of the stored numbers, not the ideal KLT)."""
        try:
            return np.linalg.inv(self.matrix64.T).astype(np.float32)
        except np.linalg.LinAlgError as exc:  # only a forged matrix: real eigenvectors stay invertible in int8
            raise ValueError("the stored spectral transform is singular") from exc

    def forward(self, z: np.ndarray) -> np.ndarray:
        """float32 components (C, h, w) of standardised bands ``z`` (C, h, w)."""
        c, h, w = z.shape
        return _product(self.matrix.T, z.reshape(c, -1)).reshape(c, h, w).astype(np.float32, copy=False)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """float32 standardised bands (C, h, w) of components ``y`` (C, h, w): :meth:`forward` undone."""
        c, h, w = y.shape
        return _product(self.inverse_matrix, y.reshape(c, -1)).reshape(c, h, w).astype(np.float32, copy=False)


def crop_klt(z: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Training's view of a standardised crop: its components under its own rotation, as the encoder stores it."""
    return Rotation.of_moment(second_moment(z, valid)).forward(z)
