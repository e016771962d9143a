"""The ``Tokenizer``: a trained model folder (config.json + model.safetensors) used from numpy.

``Tokenizer.load("default")`` gives the model shipped in the package; ``encode`` maps reflectance
tiles (N, C, H, W) to int64 indices (N, G, H/f, W/f), ``decode`` maps them back.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from eocompress._atomic import atomic_path
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.tokenizer.config import TokenizerConfig
from eocompress.imagery.tokenizer.model import VQTokenizerModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def default_model_dir() -> Path:
    """Folder of the model shipped inside the package (``eocompress/models/default``)."""
    return Path(str(resources.files("eocompress").joinpath("models", "default")))


def save_model(model: VQTokenizerModel, cfg: TokenizerConfig, out: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out`` (each file atomically)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "eocompress-tokenizer"})
    with atomic_path(out / CONFIG_FILE) as tmp:
        tmp.write_text(cfg.to_json())
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        (out / name).chmod(0o644)  # readable model files, also when installed as package data
    return out


class Tokenizer:
    """A trained multispectral VQ tokenizer used from numpy (float32 reflectance in, int64 indices out)."""

    def __init__(self, model: VQTokenizerModel, cfg: TokenizerConfig, model_id: str = "", path: Path | None = None):
        self.model = model.eval()
        self.config = cfg
        self.model_id = model_id
        self.path = path

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", device: str = "cpu") -> Tokenizer:
        """Load ``"default"`` (the packaged model) or a model folder (config.json + model.safetensors)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = default_model_dir() if str(name_or_path) == "default" else Path(name_or_path)
        if not path.is_dir():
            raise FileFormatError(
                f"{path} is not a model folder; use 'default' or a folder of {CONFIG_FILE} + {WEIGHTS_FILE} "
                "(made by `eocompress tokenizer train --out DIR`)"
            )
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise FileFormatError(f"{weights} is missing; a tokenizer model folder needs {WEIGHTS_FILE}")
        cfg = TokenizerConfig.from_json(path / CONFIG_FILE)
        model = VQTokenizerModel(cfg)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise FileFormatError(
                f"{weights} is not a readable safetensors file ({exc}); retrain or re-copy it"
            ) from exc
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise FileFormatError(
                f"{weights} does not match {path / CONFIG_FILE} ({str(exc).splitlines()[0]}); "
                "keep the two files of one training run together"
            ) from exc
        model_id = hashlib.sha256(weights.read_bytes()).hexdigest()
        return cls(model.to(device), cfg, model_id, path)

    def save(self, out: str | os.PathLike) -> Path:
        """Write this model to a folder (config.json + model.safetensors)."""
        return save_model(self.model, self.config, out)

    # ------------------------------------------------------------------ sizes
    @property
    def bits_per_index(self) -> int:
        """ceil(log2(V)) bits per index (FSQ: of prod(levels))."""
        return self.config.bits_per_index

    @property
    def indices_per_position(self) -> int:
        """G indices per latent position."""
        return self.config.groups

    @property
    def compression_ratio(self) -> float:
        """Raw uint16 size over index bits: f² · C · 16 / (G · bits_per_index)."""
        return self.config.compression_ratio

    @property
    def num_parameters(self) -> int:
        """Trainable parameter count of encoder, quantizer and decoder."""
        return sum(p.numel() for p in self.model.parameters())

    # ------------------------------------------------------------------ encode / decode
    def _check_tiles(self, x: np.ndarray) -> np.ndarray:
        cfg = self.config
        x = np.asarray(x)
        if x.ndim == 3:
            raise InputError(f"expected a batch (N, C, H, W), got one tile {x.shape}; use x[None]")
        if x.ndim != 4:
            raise InputError(f"expected float32 tiles (N, C, H, W), got an array of shape {x.shape}")
        if x.shape[1] != cfg.num_bands:
            raise InputError(
                f"tiles have {x.shape[1]} bands, the model reads {cfg.num_bands} ({', '.join(cfg.bands)}); "
                "select these bands (Scene.select) or use a model trained on yours"
            )
        f = cfg.downsample
        h, w = x.shape[2:]
        if h < f or w < f or h % f or w % f:
            raise InputError(
                f"tiles are {h}x{w}; height and width must be multiples of the downsampling factor {f} "
                f"(>= {f}): pad or crop them"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"tiles are {x.dtype}; give float reflectance (Scene.reflectance()), not DNs")
        if not np.isfinite(x).all():
            raise InputError(
                f"tiles contain {int((~np.isfinite(x)).sum())} NaN/Inf values; pass valid= to mark them and "
                "replace them by any finite value"
            )
        return x.astype(np.float32, copy=False)

    @torch.no_grad()
    def encode(self, x: np.ndarray, valid: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Reflectance tiles (N, C, H, W) -> int64 indices (N, G, H/f, W/f).

        ``valid`` (N, H, W) marks usable pixels (default: all); the others are replaced by the band
        means before encoding. A tile with no valid pixel, or whose every value is the same (e.g. all
        DN 0 nodata), is an error: the caller should store it as empty instead.
        """
        x = self._check_tiles(x)
        flat = x.reshape(len(x), -1)
        constant = np.flatnonzero(flat.min(axis=1) == flat.max(axis=1))
        if constant.size:
            raise InputError(
                f"tiles {constant[:10].tolist()} are all nodata (every value identical); drop them before "
                "encoding (the imagery codec stores them as empty)"
            )
        valid = np.ones((x.shape[0], *x.shape[2:]), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if valid.shape != (x.shape[0], *x.shape[2:]):
            raise InputError(f"valid has shape {valid.shape}; expected (N, H, W) = {(x.shape[0], *x.shape[2:])}")
        empty = np.flatnonzero(~valid.reshape(len(valid), -1).any(axis=1))
        if empty.size:
            raise InputError(
                f"tiles {empty[:10].tolist()} are all nodata (no valid pixel); drop them before encoding "
                "(the imagery codec stores them as empty)"
            )
        mean = self.model.band_mean.cpu().numpy().reshape(1, -1, 1, 1)
        x = np.where(valid[:, None], x, mean).astype(np.float32)
        device = self.model.band_mean.device
        out = []
        for start in range(0, len(x), batch_size):
            chunk = torch.from_numpy(x[start : start + batch_size]).to(device)
            out.append(self.model.encode(chunk).long().cpu().numpy())
        return np.concatenate(out).astype(np.int64)

    @torch.no_grad()
    def decode(self, indices: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Indices (N, G, h, w) -> float32 reflectance (N, C, h·f, w·f)."""
        idx = np.asarray(indices)
        g, v = self.config.groups, self.config.effective_codebook_size
        if idx.ndim != 4 or idx.shape[1] != g:
            raise InputError(f"indices must be (N, {g}, h, w) for this model, got shape {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"indices must be integers, got {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= v):
            raise InputError(
                f"indices range {idx.min()}..{idx.max()} outside the codebook 0..{v - 1}; were they made by "
                f"another model? (this one is {self.model_id[:12]})"
            )
        device = self.model.band_mean.device
        out = []
        for start in range(0, len(idx), batch_size):
            chunk = torch.from_numpy(idx[start : start + batch_size].astype(np.int64)).to(device)
            out.append(self.model.decode(chunk).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def describe(self) -> dict[str, object]:
        """Architecture, quantizer and sizes for ``eocompress tokenizer info``."""
        cfg = self.config
        return {
            "path": str(self.path) if self.path else "",
            "model_id": self.model_id,
            "bands": ", ".join(cfg.bands),
            "quantizer": cfg.quantizer,
            "codebook_size": cfg.effective_codebook_size,
            "fsq_levels": cfg.fsq_levels if cfg.quantizer == "fsq" else None,
            "groups": cfg.groups,
            "latent_dim": cfg.latent_dim,
            "downsample": cfg.downsample,
            "channels": cfg.channels,
            "discriminator": cfg.discriminator,
            "bits_per_index": self.bits_per_index,
            "bits_per_position": self.bits_per_index * cfg.groups,
            "compression_ratio_vs_uint16": round(self.compression_ratio, 1),
            "parameters": self.num_parameters,
            "trained_steps": cfg.training.get("steps"),
            "val_psnr_db": cfg.training.get("val", {}).get("psnr_db"),
            "val_sam_deg": cfg.training.get("val", {}).get("sam_deg"),
        }
