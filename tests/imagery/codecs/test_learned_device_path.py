"""``--device cuda`` code paths without a GPU: the model on torch's ``meta`` device stands in for one.

A meta tensor has a shape and no values. The stand-in (a torch function mode) refuses what a GPU refuses:
an op on tensors of two devices (a CPU block handed to a model that lives elsewhere) and ``.numpy()`` of a
tensor not on the CPU; it makes the copy back to the CPU (``.cpu()`` of a meta tensor) return zeros.
Encode, whole decode, window decode, the streamed GeoTIFF decode and the token export then run the same
device moves a GPU run does; the values are meaningless, the devices are what is checked. On a machine with
a GPU, ``test_learned_codec_modules.py::test_cuda_end_to_end_matches_cpu`` checks the values too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
import torch
from torch.overrides import TorchFunctionMode

from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.fp_train import export_model

pytestmark = pytest.mark.realdata

DESERT = "imagery/oscd-s2l1c/abudhabi/imgs_1"
SMALL = {"channels": [8, 8, 8], "latent": 16, "groups": 2, "codebook": 32, "codebook_dim": 4, "levels": [4, 4, 3]}


class ElsewhereDevice(TorchFunctionMode):
    """Copies from ``meta`` to the CPU give zeros of the right shape; ``.numpy()`` must see a CPU tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.copies_back = 0
        self.to_numpy = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.cpu and args[0].device.type == "meta":
            self.copies_back += 1
            return torch.zeros(args[0].shape, dtype=args[0].dtype)
        if func is torch.Tensor.numpy:
            assert args[0].device.type == "cpu", f".numpy() on a {args[0].device} tensor: copy it to the CPU first"
            self.to_numpy += 1
        if func not in _MOVES:  # a GPU refuses an op on tensors of two devices; meta alone would not
            devices = {t.device.type for t in _tensors((args, kwargs)) if t.dim() > 0 or t.device.type != "cpu"}
            assert len(devices) <= 1, f"{getattr(func, '__name__', func)} mixes tensors on {sorted(devices)}"
        return func(*args, **kwargs)


#: What moves a tensor between devices (mixing devices is its job).
_MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.copy_, torch.Tensor.cuda}


def _tensors(obj: object) -> Iterator[torch.Tensor]:
    """The tensors in nested args/kwargs."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


@pytest.fixture(scope="module")
def window(data_root):
    return read_scene(data_root / DESERT).crop(0, 0, 96, 80)


def _run_everywhere(codec: LearnedCodec, scene, tmp_path, **rate) -> ElsewhereDevice:
    """Every public path of the codec with its model on ``meta``."""
    codec.model.to("meta")
    assert codec.device.type == "meta"
    with ElsewhereDevice() as mode:
        blob = codec.encode_scene(scene, **rate)
        dn = codec.decode(blob)
        part = codec.decode(blob, window=(16, 8, 40, 32))
        tokens = codec.tokens(blob)
        out = codec.decode_to_geotiff(blob, tmp_path / "d.tif")
    assert dn.shape == (len(codec.bands), 96, 80) and dn.dtype == np.uint16
    assert part.shape == (len(codec.bands), 40, 32) and tokens.ndim == 3
    with rasterio.open(out) as src:
        assert (src.count, src.height, src.width) == dn.shape
    return mode


def test_scalar_codec_moves_every_block_to_the_model_device_and_back(window, tmp_path) -> None:
    """The packaged default model: inputs follow the parameters to their device, results come back first."""
    mode = _run_everywhere(LearnedCodec.load("default"), window, tmp_path, ratio=100)
    # the prior's three tables, one analysis block, and the synthesis of the decode, window and streamed decode
    assert mode.copies_back >= 6 and mode.to_numpy >= mode.copies_back


@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_discrete_codec_moves_indices_and_codes_to_the_model_device(quantizer, window, tmp_path) -> None:
    """A codebook quantizer's index search and code lookup run on the model's device too (untrained model)."""
    torch.manual_seed(0)
    cfg = FPConfig(quantizer=quantizer, **SMALL)
    export_model(FactorizedPriorTokenizer(cfg), cfg, tmp_path / "m")
    mode = _run_everywhere(LearnedCodec.load(tmp_path / "m"), window, tmp_path, ratio=10)
    assert mode.copies_back >= 6
