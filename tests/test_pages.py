"""``eocompress._pages``: numpy's huge-page hint off while an encode or decode runs, only where the kernel stalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _benchmarks import load_benchmark
from eocompress import _pages
from eocompress._pages import without_stalling_hugepages

multiarray = pytest.importorskip("numpy._core.multiarray")


def _kernel(tmp_path: Path, monkeypatch, enabled: str, defrag: str) -> None:
    """A sysfs folder saying ``enabled`` and ``defrag`` as Linux writes them (the choice in brackets)."""
    for name, text in (("enabled", enabled), ("defrag", defrag)):
        (tmp_path / name).write_text(text + "\n")
    monkeypatch.setattr(_pages, "THP", tmp_path)
    _pages.hint_stalls.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_detection():
    _pages.hint_stalls.cache_clear()
    yield
    _pages.hint_stalls.cache_clear()


@pytest.mark.parametrize(("enabled", "defrag", "stalls"), [
    ("always [madvise] never", "always defer defer+madvise [madvise] never", True),
    ("[always] madvise never", "always defer [defer+madvise] madvise never", True),
    ("always [madvise] never", "always [defer] defer+madvise madvise never", False),
    ("always madvise [never]", "always defer defer+madvise [madvise] never", False),
    ("always [madvise] never", "[always] defer defer+madvise madvise never", False),
])
def test_the_hint_stalls_where_defrag_compacts_madvised_regions(tmp_path, monkeypatch, enabled, defrag, stalls):
    _kernel(tmp_path, monkeypatch, enabled, defrag)
    assert _pages.hint_stalls() is stalls


def test_no_sysfs_no_change(tmp_path, monkeypatch) -> None:
    """Off Linux (no sysfs files) nothing is switched."""
    monkeypatch.setattr(_pages, "THP", tmp_path / "absent")
    before = multiarray._get_madvise_hugepage()
    with without_stalling_hugepages():
        assert multiarray._get_madvise_hugepage() == before


def test_nested_holders_restore_the_hint(tmp_path, monkeypatch) -> None:
    """Where it stalls the hint is off inside, nested too, and the caller's setting is back after the outer holder
    (concurrent holders: ``tests/test_held.py``)."""
    _kernel(tmp_path, monkeypatch, "always [madvise] never", "always defer defer+madvise [madvise] never")
    before = multiarray._set_madvise_hugepage(True)
    try:
        with without_stalling_hugepages():
            assert not multiarray._get_madvise_hugepage()
            with without_stalling_hugepages():
                assert not multiarray._get_madvise_hugepage()
            assert not multiarray._get_madvise_hugepage()
        assert multiarray._get_madvise_hugepage()
    finally:
        multiarray._set_madvise_hugepage(before)


def test_an_error_inside_restores_the_hint(tmp_path, monkeypatch) -> None:
    _kernel(tmp_path, monkeypatch, "[always] madvise never", "always defer [defer+madvise] madvise never")
    before = multiarray._set_madvise_hugepage(True)
    try:
        with pytest.raises(ValueError, match="inside"), without_stalling_hugepages():
            raise ValueError("inside")
        assert multiarray._get_madvise_hugepage()
    finally:
        multiarray._set_madvise_hugepage(before)


def test_the_learned_codec_encodes_and_decodes_with_the_hint_off(tmp_path, monkeypatch) -> None:
    """The codec's encode and decode (what the CLI and the benchmarks run) hold it: the hint is off while the
    enhancement layer is made and decoded, and back after."""
    pytest.importorskip("torch")
    from eocompress.imagery.codecs import enhancement, get_codec
    from eocompress.imagery.readers.scenes import Scene

    _kernel(tmp_path, monkeypatch, "always [madvise] never", "always defer defer+madvise [madvise] never")
    seen: dict[str, bool] = {}
    enhance, decode_layer = enhancement.enhance, enhancement.decode_layer

    def spy_enhance(*args, **kwargs):
        seen["encode"] = multiarray._get_madvise_hugepage()
        return enhance(*args, **kwargs)

    def spy_decode(*args, **kwargs):
        seen["decode"] = multiarray._get_madvise_hugepage()
        return decode_layer(*args, **kwargs)

    monkeypatch.setattr(enhancement, "enhance", spy_enhance)
    monkeypatch.setattr(enhancement, "decode_layer", spy_decode)
    rng = np.random.default_rng(0)
    data = (rng.normal(1500, 300, (12, 48, 48)) + np.linspace(0, 800, 48)).clip(1, 10000).astype(np.uint16)
    codec = get_codec("learned")
    scene = Scene(data=data, bands=list(codec.bands), crs="EPSG:32633", transform=(10, 0, 0, 0, -10, 0))
    before = multiarray._set_madvise_hugepage(True)
    try:
        blob = codec.encode(scene, ratio=50)
        assert enhancement.is_enhanced(blob)
        codec.decode(blob)
        assert seen == {"encode": False, "decode": False} and multiarray._get_madvise_hugepage()
    finally:
        multiarray._set_madvise_hugepage(before)


def test_the_benchmark_makes_the_same_file_with_the_hint_on_and_off(data_root: Path, monkeypatch, capsys) -> None:
    """``benchmarks/imagery/hugepage_hint.py`` on a 160 px crop at 1/450: a row with both settings' times, JPEG
    2000's, and the same file both ways; the codec's own detection is back afterwards."""
    import sys

    bench = load_benchmark("imagery/hugepage_hint.py")
    stalls = _pages.hint_stalls
    monkeypatch.setattr(sys, "argv", ["hugepage_hint.py", "--scenes", "oscd-s2l1c/milano/imgs_1:160", "--rates",
                                      "450", "--repeats", "1"])
    bench.main()
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| oscd-s2l1c/milano"))
    assert "160x160 1/450" in row and row.count(" s (") == 2 and row.rstrip(" |").endswith("yes")
    assert _pages.hint_stalls is stalls
