"""The faiss index over a product's codes: exact code mapping, recall against the exact scan, checksum,
overwrite rule and one-line errors, on small real products (the Presto land-cover field)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eocompress.cli import main
from eocompress.embeddings.codecs import Codec
from eocompress.embeddings.codecs.recall import recall_at_k
from eocompress.embeddings.products.api import compress
from eocompress.embeddings.products.index import (
    IndexChecksumError,
    build_index,
    default_index_path,
    open_index,
    sq8_view,
)
from eocompress.embeddings.products.search import search
from eocompress.errors import EOCompressError


@pytest.fixture(scope="module")
def products(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real products of the 101 x 100 land-cover field: pca16,int8 and binary (Zarr, 48-pixel chunks)."""
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    tmp = tmp_path_factory.mktemp("search_index")
    return {
        spec: compress(src, tmp / f"{spec.replace(',', '_')}.zarr", spec, chunk=48, fit_sample=5000, stac=False)
        for spec in ("pca16,int8", "binary")
    }


def _queries(n: int = 12) -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    return [(int(r), int(c)) for r, c in zip(rng.integers(0, 101, n), rng.integers(0, 100, n), strict=True)]


def _ids(hits) -> np.ndarray:
    return np.array([h.row * 100 + h.col for h in hits])


def test_sq8_view_reads_int8_codes_verbatim() -> None:
    """The stored int8 codes of a PCA codec, read as faiss SQ8 codes in the view's basis, decode exactly."""
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((2000, 24)) @ rng.standard_normal((24, 24)) + 3).astype(np.float32)
    for spec in ("int8", "pca8,int8", "select6,int8"):
        codec = Codec.from_spec(spec).fit(X)
        view = sq8_view(codec)
        assert view is not None, spec
        codes = codec.encode(X[:100])
        np.testing.assert_allclose(view.decode_u(codes) @ view.basis + view.offset, codec.decode(codes), atol=2e-4)
    # a random projection has non-orthogonal directions and pq has no scalar codes: no verbatim view
    assert sq8_view(Codec.from_spec("rp8,int8").fit(X)) is None
    assert sq8_view(Codec.from_spec("int4").fit(X)) is None


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_index_search_agrees_with_exact_scan(products: dict[str, Path], tmp_path: Path, metric: str) -> None:
    prod = products["pca16,int8"]
    out = build_index(prod, tmp_path / f"{metric}.index", metric=metric, nlist=32)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == ("ivf-codes" if metric == "ip" else "ivf-unit")
    assert manifest["ntotal"] == 101 * 100
    exact, calibrated, full = [], [], []
    for px in _queries():
        exact.append(_ids(search(prod, pixel=px, metric=metric)))
        calibrated.append(_ids(search(prod, pixel=px, metric=metric, index=out)))
        full.append(_ids(search(prod, pixel=px, metric=metric, index=out, nprobe=32)))
    exact = np.array(exact)
    assert recall_at_k(exact, np.array(calibrated), k=None) >= 0.85
    # visiting every list: ip scores the very codes the scan scores; cosine re-quantizes unit vectors
    assert recall_at_k(exact, np.array(full), k=None) >= (0.99 if metric == "ip" else 0.8)


def test_binary_index_matches_hamming_scan(products: dict[str, Path], tmp_path: Path) -> None:
    prod = products["binary"]
    out = build_index(prod, tmp_path / "b.index", nlist=16)
    for px in _queries(6):
        exact = search(prod, pixel=px)
        got = search(prod, pixel=px, index=out, nprobe=16)
        # ties in Hamming distance may order differently; the distances themselves must agree
        assert [h.hamming for h in got] == [h.hamming for h in exact]


def test_checksum_tamper_is_detected(products: dict[str, Path], tmp_path: Path, capsys) -> None:
    prod = products["pca16,int8"]
    out = build_index(prod, tmp_path / "t.index", metric="ip", nlist=16)
    open_index(out)  # intact
    raw = bytearray((out / "index.faiss").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (out / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(IndexChecksumError, match="sha256"):
        open_index(out)
    with pytest.raises(SystemExit) as exc:
        main(["search", str(prod), "--pixel", "3", "4", "--metric", "ip", "--index-path", str(out)])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "sha256" in err and len(err.splitlines()) == 1


def test_overwrite_rule(products: dict[str, Path], tmp_path: Path) -> None:
    prod = products["pca16,int8"]
    out = build_index(prod, tmp_path / "o.index", metric="ip", nlist=8)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(EOCompressError, match="--overwrite"):
        build_index(prod, out, metric="ip", nlist=8)
    assert (out / "manifest.json").read_bytes() == before
    build_index(prod, out, metric="ip", nlist=16, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["nlist"] == 16
    # --overwrite never deletes a folder that is not an index
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(EOCompressError, match=r"not an eocompress index|did not create"):
        build_index(prod, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_index_and_search(products: dict[str, Path], tmp_path: Path, capsys) -> None:
    prod = tmp_path / "p.zarr"
    shutil.copytree(products["pca16,int8"], prod)
    main_ok = ["index", str(prod), "--nlist", "16", "--json"]
    with pytest.raises(SystemExit) as exc:
        main(main_ok)
    assert exc.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert Path(report["index"]) == default_index_path(prod) and report["metric"] == "cosine"
    with pytest.raises(SystemExit):
        main(["search", str(prod), "--pixel", "10", "20", "--index", "--json"])
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 10 and hits[0]["row"] == 10 and hits[0]["col"] == 20
    # existing index without --overwrite: one line, exit 1
    with pytest.raises(SystemExit) as exc:
        main(["index", str(prod)])
    assert exc.value.code == 1 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["index", "{tmp}/missing.zarr"], "does not exist"),
        (["index", "{prod}", "--metric", "l1"], "--metric"),
        (["search", "{prod}", "--pixel", "1", "1", "--index-path", "{tmp}/none.index"], "eocompress index"),
        (["search", "{prod}", "--pixel", "1", "1", "--index-path", "{tmp}"], "not an eocompress index"),
    ],
)
def test_bad_inputs_give_one_line(products, tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    argv = [a.format(tmp=tmp_path, prod=products["pca16,int8"]) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_index_of_a_chip_table_is_refused_in_one_line(lulc: dict[str, np.ndarray], tmp_path: Path, capsys) -> None:
    """A chip table (GeoParquet of real embeddings) has no grid to index: one line, before any progress bar."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = lulc["X"][:300].astype(np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
    pq.write_table(pa.table({"embedding": emb, "id": np.arange(len(X))}), tmp_path / "chips.parquet")
    prod = compress(tmp_path / "chips.parquet", tmp_path / "p.parquet", "int8", stac=False)
    with pytest.raises(SystemExit) as exc:
        main(["index", str(prod)])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "chip table" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p.parquet.index").exists()


def test_metric_mismatch_is_named(products: dict[str, Path], tmp_path: Path) -> None:
    prod = products["pca16,int8"]
    out = build_index(prod, tmp_path / "ip.index", metric="ip", nlist=8)
    with pytest.raises(EOCompressError, match="--metric ip"):
        search(prod, pixel=(1, 1), metric="cosine", index=out)
