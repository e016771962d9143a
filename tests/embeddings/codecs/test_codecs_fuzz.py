"""Fuzzed codec JSON and codes files (hypothesis, derandomized, bounded): our error or an identical decode.

Mutations of the text keep the old checksum, so anything but an identical decode must be refused.
Structured mutations recompute the checksum (a deliberate edit, not damage): those must give our
FileFormatError or a codec that decodes to finite vectors of the right shape, never another exception.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eocompress import Codec
from eocompress.embeddings.codecs.codec import canonical_sha256
from eocompress.embeddings.codecs.files import read_codes, write_codes
from eocompress.errors import FileFormatError

SPECS = ["int8", "pca8,int4", "pq4", "rp8,binary", "select8,int8", "itq8,binary", "opq4,pq4", "tc4", "pca8,rq2"]
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

_rng = np.random.default_rng(0)
_X = (_rng.standard_normal((300, 16)) * np.linspace(0.5, 2, 16)).astype(np.float32)
_CODECS = {spec: Codec(spec).fit(_X) for spec in SPECS}
_CODES = {spec: codec.encode(_X[:20]) for spec, codec in _CODECS.items()}
_DECODED = {spec: codec.decode(_CODES[spec]) for spec, codec in _CODECS.items()}
_JSON = {spec: codec.to_json() for spec, codec in _CODECS.items()}


def _decode_or_error(text: str, spec: str) -> np.ndarray | None:
    try:
        codec = Codec.from_json(text)
    except FileFormatError:
        return None
    return codec.decode(_CODES[spec]) if codec.bytes_per_vector == _CODES[spec].shape[1] else np.zeros(0)


@FUZZ
@given(spec=st.sampled_from(SPECS), data=st.data())
def test_text_mutations_are_refused_or_harmless(spec: str, data: Any) -> None:
    text = _JSON[spec]
    kind = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
    pos = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(list('0123456789-+.eE,:{}[]" aAzZ/=\\')))
    if kind == "replace":
        text = text[:pos] + char + text[pos + 1:]
    elif kind == "delete":
        text = text[:pos] + text[pos + 1:]
    elif kind == "insert":
        text = text[:pos] + char + text[pos:]
    else:
        text = text[:pos]
    out = _decode_or_error(text, spec)
    if out is not None:
        np.testing.assert_array_equal(out, _DECODED[spec])


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [path] + [p for k, v in obj.items() for p in _leaves(v, (*path, k))]
    if isinstance(obj, list):
        return [path] + [p for i, v in enumerate(obj) for p in _leaves(v, (*path, i))]
    return [path]


_VALUES = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2, 255, 256, 1 << 40]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.none(), st.booleans(),
    st.lists(st.integers(-3, 300), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "int8", "pq4", "AAAA", "AAAAAAAAAAA="]),
)


@FUZZ
@given(spec=st.sampled_from(SPECS), data=st.data())
def test_edits_with_recomputed_checksum_are_refused_or_decode_sanely(spec: str, data: Any) -> None:
    meta = json.loads(_JSON[spec])
    leaves = [p for p in _leaves(meta) if p and p[0] != "sha256"]
    path = data.draw(st.sampled_from(leaves))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_VALUES)
    meta["sha256"] = canonical_sha256(meta)
    out = _decode_or_error(json.dumps(meta), spec)
    if out is not None and out.size:
        assert out.shape == _DECODED[spec].shape and np.isfinite(out).all()


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_codes_file_byte_damage(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "codes.npz"
    spec = data.draw(st.sampled_from(["int8", "pq4"]))
    write_codes(path, _CODES[spec], _CODECS[spec], {"y": np.arange(20)})
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path.write_bytes(bytes(blob))
    try:
        codec, codes, extra = read_codes(path)
    except FileFormatError:
        return
    np.testing.assert_array_equal(codec.decode(codes), _DECODED[spec])
    np.testing.assert_array_equal(extra["y"], np.arange(20))
