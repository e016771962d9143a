"""The per-scene spectral transform (KLT) in front of the learned codec, shared by training and the codec.

A model trained with ``spectral="klt"`` does not see the 12 standardised bands but their principal
components over the scene (or training crop): each scene gets its own decorrelating rotation, so
ground whose spectra the network rarely met (brine, snow, cloud) reaches it in the same canonical
form as farmland. The rotation is stored in the token file as ``bands x bands`` int8 (144 bytes for 12
bands) and the decoder inverts exactly that stored matrix, so what the network saw and what the
decoder undoes are the same numbers; the int8 rounding only makes the rotation not quite orthonormal,
which the exact inverse absorbs.
"""

from __future__ import annotations

import numpy as np

#: The spectral front ends a model may have: the standardised bands as they are, or their KLT.
SPECTRAL = ("bands", "klt")
#: int8 steps per unit of an eigenvector entry (entries lie in [-1, 1]).
KLT_STEPS = 127


def second_moment(z: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """float64 (C, C) sum of z z^T over the valid pixels of standardised (C, H, W) ``z`` (a block of a scene)."""
    pix = z.reshape(z.shape[0], -1)
    if valid is not None:
        pix = pix[:, np.asarray(valid, bool).ravel()]
    pix = pix.astype(np.float64)
    return pix @ pix.T


def klt_matrix(moment: np.ndarray) -> np.ndarray:
    """int8 (C, C) eigenvectors of ``moment`` as columns, strongest first, each signed so its largest entry is > 0."""
    moment = np.asarray(moment, np.float64)
    if not np.all(np.isfinite(moment)):
        raise ValueError("the spectral second moment holds non-finite values")
    values, vectors = np.linalg.eigh((moment + moment.T) / 2)
    vectors = vectors[:, np.argsort(-values, kind="stable")]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    return np.clip(np.rint(vectors * KLT_STEPS), -KLT_STEPS, KLT_STEPS).astype(np.int8)


def forward(matrix: np.ndarray, z: np.ndarray) -> np.ndarray:
    """float32 components (C, h, w) of standardised bands ``z`` (C, h, w) under the int8 ``matrix``."""
    m = matrix.astype(np.float32) / np.float32(KLT_STEPS)
    c, h, w = z.shape
    return (m.T @ z.reshape(c, -1)).reshape(c, h, w).astype(np.float32, copy=False)


def inverse_matrix(matrix: np.ndarray) -> np.ndarray:
    """float32 (C, C) exact inverse of the forward rotation the int8 ``matrix`` stands for."""
    m = matrix.astype(np.float64) / KLT_STEPS
    try:
        return np.linalg.inv(m.T).astype(np.float32)
    except np.linalg.LinAlgError as exc:  # only a forged matrix: real eigenvectors stay invertible in int8
        raise ValueError("the stored spectral transform is singular") from exc


def inverse(matrix: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 standardised bands (C, h, w) of components ``y`` (C, h, w): :func:`forward` undone."""
    c, h, w = y.shape
    return (inverse_matrix(matrix) @ y.reshape(c, -1)).reshape(c, h, w).astype(np.float32, copy=False)


def crop_klt(z: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Training's view of a standardised crop: its components under its own int8 KLT."""
    return forward(klt_matrix(second_moment(z, valid)), z)
