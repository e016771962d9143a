"""A PyTorch dataset over a token archive: decoded tiles or token indices, for training loops.

``TokenArchiveDataset(path)`` reads a GeoParquet token archive (``eocompress imagery encode
SHARD.parquet``) or a folder of learned ``.eotok`` files. Each sample is a dict in torchgeo's habit:
``image`` (float32 reflectance, bands x H x W, DN offset removed, nodata 0), ``mask`` (bool H x W, True
where valid), ``crs``, ``bounds`` (minx, miny, maxx, maxy in that CRS) and the Major-TOM keys; with
``mode="tokens"`` ``tokens`` holds the integer codebook indices (channels x H/16 x W/16) instead of
pixels. From an archive, ``cloud_mask`` (uint8 H x W, the Major-TOM mask exactly as the shard had it,
:data:`NO_MASK` where the archive kept none) comes with either mode. ``crop`` cuts a random window per
sample from a seeded generator (the same crop for the same ``seed``, ``epoch`` and index whatever worker
draws it); in pixel mode only that window is synthesised
(``LearnedCodec.decode(window=...)``), not the whole cell; ``crop_stride=16`` puts crops on the token
grid, so the window needs one latent row and column less (measured 20-35 % less synthesis). Files and
the model are opened lazily, once in each process: nothing open is pickled, so ``DataLoader(num_workers=N)``
works and each worker keeps one codec.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from eocompress.errors import DataMissingError, InputError
from eocompress.imagery.archives.cloud_mask import unpack_mask
from eocompress.imagery.archives.majortom import open_archive
from eocompress.imagery.codec.learned import LearnedCodec, is_learned_token_file
from eocompress.imagery.readers.scenes import QUANTIFICATION_VALUE
from eocompress.imagery.tokenizer.device import check_device

#: Pixels per token position of the learned codec (crops in tokens mode must be multiples of it).
TOKEN_STRIDE = 16
#: ``cloud_mask`` value of a sample whose archive row kept no cloud mask (Major-TOM's classes are small ints).
NO_MASK = 255


class TokenArchiveDataset(Dataset):
    """Samples of a token archive (GeoParquet) or a folder of ``.eotok`` files, decoded or as token indices."""

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "pixels",
        crop: int | tuple[int, int] | None = None,
        device: str = "cpu",
        model: str = "default",
        seed: int = 0,
        crop_stride: int = 1,
    ) -> None:
        if mode not in ("pixels", "tokens"):
            raise InputError(f"mode must be 'pixels' or 'tokens', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.device = check_device(device)
        self.model = model
        self.seed = int(seed)
        self.epoch = 0
        if crop_stride < 1:
            raise InputError(f"crop_stride must be >= 1 px, got {crop_stride}")
        self.crop_stride = int(crop_stride)
        self.crop = None if crop is None else ((crop, crop) if isinstance(crop, int) else tuple(crop))
        if self.crop is not None:
            if min(self.crop) <= 0:
                raise InputError(f"crop must be positive, got {crop}")
            if mode == "tokens" and any(c % TOKEN_STRIDE for c in self.crop):
                raise InputError(f"in tokens mode crop must be a multiple of {TOKEN_STRIDE} px, got {crop}")
        self._codec: LearnedCodec | None = None
        self._pf: Any = None
        self._pid: int | None = None
        if not self.path.exists():
            raise DataMissingError(f"{self.path} does not exist; give a token archive (.parquet) or a folder of .eotok")
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.glob("*.eotok") if is_learned_token_file(p))
            if not self.files:
                raise DataMissingError(f"{self.path} holds no learned .eotok files; encode scenes into it first")
            self.rows = [{"product_id": p.stem, "grid_cell": "", "product_datetime": ""} for p in self.files]
            self._where: list[tuple[int, int]] = []
        else:
            pf, _ = open_archive(self.path)
            keys = pf.read(columns=["product_id", "grid_cell", "product_datetime"]).to_pylist()
            self.rows = [{k: (v or "") for k, v in r.items()} for r in keys]
            self._where = [(g, i) for g in range(pf.num_row_groups) for i in range(pf.metadata.row_group(g).num_rows)]
            self.files = []
            del pf  # reopened lazily in each worker

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_codec"] = state["_pf"] = state["_pid"] = None  # never pickle open files or the model
        return state

    def set_epoch(self, epoch: int) -> None:
        """Draw new random crops: the crop of a sample depends on ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    @property
    def codec(self) -> LearnedCodec:
        """The learned codec, loaded once per process on ``device``."""
        if self._codec is None or self._pid != os.getpid():
            self._codec = LearnedCodec.load(self.model, device=self.device)
            self._pf = None
            self._pid = os.getpid()
        return self._codec

    def _blob(self, index: int) -> tuple[bytes, bytes | None]:
        """The sample's token bytes and packed cloud mask (None: none kept, or a folder of .eotok)."""
        if self.files:
            return self.files[index].read_bytes(), None
        if self._pf is None or self._pid != os.getpid():
            import pyarrow.parquet as pq

            _ = self.codec  # sets the process id
            self._pf = pq.ParquetFile(self.path)
        group, row = self._where[index]
        cols = ["tokens", "cloud_mask"] if "cloud_mask" in self._pf.schema_arrow.names else ["tokens"]
        table = self._pf.read_row_group(group, columns=cols)
        mask = table.column("cloud_mask")[row].as_py() if len(cols) == 2 else None
        return table.column("tokens")[row].as_py(), mask

    def _window(self, index: int, h: int, w: int, stride: int = 1) -> tuple[int, int, int, int]:
        """(row, col, height, width) of the sample's crop, in pixels, on a ``stride`` grid."""
        if self.crop is None:
            return 0, 0, h, w
        ch, cw = self.crop
        if ch > h or cw > w:
            raise InputError(f"crop {ch}x{cw} is larger than sample {index} ({h}x{w}); use a smaller crop")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        r = int(rng.integers(0, (h - ch) // stride + 1)) * stride
        c = int(rng.integers(0, (w - cw) // stride + 1)) * stride
        return r, c, ch, cw

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        codec = self.codec
        source = f"{self.path} sample {index}"
        blob, mask_blob = self._blob(index)
        head, _ = codec.read_header(blob, source)
        sample: dict[str, Any] = dict(self.rows[index])
        if self.mode == "tokens":
            tokens = codec.tokens(blob, source)
            r, c, ch, cw = self._window(index, head.height, head.width, TOKEN_STRIDE)
            s = TOKEN_STRIDE
            tokens = tokens[:, r // s : (r + ch) // s, c // s : (c + cw) // s]
            sample["tokens"] = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
        else:
            r, c, ch, cw = self._window(index, head.height, head.width, self.crop_stride)
            # only the crop's latent sub-window (+ the synthesis' reach) is synthesised, not the whole cell
            data = codec.decode(blob, source, window=(r, c, ch, cw))
            offset = np.float32(getattr(head, "offset", 0) or 0)
            image = (data.astype(np.float32) - offset) / np.float32(QUANTIFICATION_VALUE)
            valid = np.all(data != 0, axis=0)
            image[:, ~valid] = 0.0
            sample["image"] = torch.from_numpy(image)
            sample["mask"] = torch.from_numpy(valid)
        if not self.files:
            if mask_blob:
                mask = unpack_mask(mask_blob, source)[r : r + ch, c : c + cw]
            else:
                mask = np.full((ch, cw), NO_MASK, dtype=np.uint8)
            sample["cloud_mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        crs = f"EPSG:{head.epsg}" if head.epsg else (head.wkt or "")
        sample["crs"] = crs
        sample["bounds"] = torch.tensor(_bounds(head.transform, r, c, ch, cw), dtype=torch.float64)
        sample["window"] = torch.tensor([r, c, ch, cw])
        return sample


def _bounds(transform: Any, row: int, col: int, height: int, width: int) -> list[float]:
    """(minx, miny, maxx, maxy) of a pixel window under a 6-number affine transform; NaN without one."""
    if not transform:
        return [float("nan")] * 4
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    xs, ys = [], []
    for rr in (row, row + height):
        for cc in (col, col + width):
            xs.append(a * cc + b * rr + c)
            ys.append(d * cc + e * rr + f)
    return [min(xs), min(ys), max(xs), max(ys)]


__all__ = ["NO_MASK", "TOKEN_STRIDE", "TokenArchiveDataset"]
