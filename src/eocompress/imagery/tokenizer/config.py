"""The tokenizer's configuration: architecture, quantizer, loss, training and normalisation, as JSON.

Everything needed to rebuild and decode a model lives in one ``config.json`` beside the weights.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from eocompress.errors import EOCompressError, FileFormatError
from eocompress.imagery.readers.bands import S2_L2A_BANDS, canonical_bands

QUANTIZERS = ("vq", "gsq", "dvq", "fsq")
DOWNSAMPLES = (4, 8, 16)
CONFIG_VERSION = 1


class ConfigError(EOCompressError):
    """A tokenizer configuration that cannot work (e.g. groups not dividing the latent dim)."""


@dataclass
class TokenizerConfig:
    """Architecture, quantizer, loss and training settings of a tokenizer; round-trips through JSON."""

    bands: list[str] = field(default_factory=lambda: list(S2_L2A_BANDS))
    downsample: int = 8
    latent_dim: int = 10
    groups: int = 2
    codebook_size: int = 8192
    quantizer: str = "fsq"
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8, 8, 4, 4])
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    tile_size: int = 64
    # loss
    recon_loss: str = "l1"
    sam_weight: float = 0.5
    commitment_weight: float = 0.25
    discriminator: bool = False
    disc_start: int = 0
    disc_weight: float = 0.1
    # vq / dvq codebook upkeep
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.1  # x the usage per code expected in one batch
    kmeans_init: bool = True
    # optimisation
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 2.0
    seed: int = 0
    # filled by training
    normalization: dict[str, list[float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_bands(self) -> int:
        """C, the number of input bands."""
        return len(self.bands)

    @property
    def group_dim(self) -> int:
        """d = D / G, the size of one group's latent vector."""
        return self.latent_dim // self.groups

    @property
    def effective_codebook_size(self) -> int:
        """Codes one index can take: V, or prod(levels) for FSQ."""
        return math.prod(self.fsq_levels) if self.quantizer == "fsq" else self.codebook_size

    @property
    def bits_per_index(self) -> int:
        """ceil(log2 of the codebook size) bits to store one index."""
        return max(1, math.ceil(math.log2(self.effective_codebook_size)))

    @property
    def compression_ratio(self) -> float:
        """Size of raw uint16 bands over the index bits: f² · C · 16 / (G · bits)."""
        return self.downsample**2 * self.num_bands * 16 / (self.groups * self.bits_per_index)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the setting and the fix when the settings cannot work."""
        self.bands = canonical_bands(self.bands)
        if not self.bands:
            raise ConfigError("the config lists no bands; give the band names the model reads")
        if self.quantizer not in QUANTIZERS:
            raise ConfigError(f"unknown quantizer {self.quantizer!r}; use one of {', '.join(QUANTIZERS)}")
        if self.downsample not in DOWNSAMPLES:
            raise ConfigError(f"downsample must be one of {DOWNSAMPLES}, got {self.downsample}")
        if self.groups < 1 or self.latent_dim < 1:
            raise ConfigError(f"groups ({self.groups}) and latent_dim ({self.latent_dim}) must be >= 1")
        if self.latent_dim % self.groups:
            raise ConfigError(
                f"groups G={self.groups} does not divide latent_dim D={self.latent_dim}; "
                f"choose D as a multiple of G (e.g. D={self.groups * max(1, self.latent_dim // self.groups)})"
            )
        if self.quantizer == "fsq":
            if any(int(lv) < 3 for lv in self.fsq_levels) or not self.fsq_levels:
                raise ConfigError(f"fsq levels must all be >= 3, got {self.fsq_levels}")
            if self.group_dim != len(self.fsq_levels):
                raise ConfigError(
                    f"fsq with {len(self.fsq_levels)} levels per group needs latent_dim = groups x "
                    f"{len(self.fsq_levels)} = {self.groups * len(self.fsq_levels)}, got {self.latent_dim}"
                )
        elif self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if len(self.channels) != int(math.log2(self.downsample)) + 1:
            raise ConfigError(
                f"channels needs log2(downsample)+1 = {int(math.log2(self.downsample)) + 1} entries "
                f"(one per resolution), got {self.channels}"
            )
        if self.tile_size % self.downsample or self.tile_size < self.downsample:
            raise ConfigError(
                f"tile_size {self.tile_size} must be a multiple of downsample {self.downsample}"
            )
        if type(self.steps) is not int or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}; e.g. --steps 2000")
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}; e.g. --batch-size 8")
        if type(self.seed) is not int or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be a whole number from 0 to 4294967295, got {self.seed!r}; e.g. --seed 0")
        if not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}; e.g. --lr 1e-3")
        if self.recon_loss not in ("l1", "l2"):
            raise ConfigError(f"recon_loss must be 'l1' or 'l2', got {self.recon_loss!r}")
        if self.normalization and any(len(v) != self.num_bands for v in self.normalization.values()):
            raise ConfigError("normalization mean/std need one value per band; retrain or fix config.json")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready), with the derived sizes added for readers."""
        out = asdict(self)
        out["derived"] = {
            "bits_per_index": self.bits_per_index,
            "indices_per_position": self.groups,
            "compression_ratio_vs_uint16": round(self.compression_ratio, 2),
        }
        return out

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TokenizerConfig:
        """Build from a dict; unknown keys are an error naming them."""
        raw = {k: v for k, v in raw.items() if k != "derived"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{source} has unknown settings {unknown}; known ones are {sorted(known)}")
        if int(raw.get("version", CONFIG_VERSION)) > CONFIG_VERSION:
            raise FileFormatError(
                f"{source} is config version {raw['version']}, newer than this eocompress "
                f"({CONFIG_VERSION}); upgrade eocompress"
            )
        return cls(**raw)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TokenizerConfig:
        """Read a ``config.json``; a clear error when it is missing or not JSON."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"{path} does not exist; a tokenizer model folder needs config.json")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{path} is not valid JSON ({exc}); fix or regenerate it") from exc
        if not isinstance(raw, dict):
            raise FileFormatError(f"{path} must hold a JSON object of settings")
        return cls.from_dict(raw, source=str(path))

    def updated(self, **changes: Any) -> TokenizerConfig:
        """A copy with some settings changed (None values are ignored), validated."""
        raw = asdict(self)
        raw.update({k: v for k, v in changes.items() if v is not None})
        return TokenizerConfig.from_dict(raw)
