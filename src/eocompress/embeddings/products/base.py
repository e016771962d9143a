"""What every product kind shares, below the kinds: the ``Product`` protocol, a base class and the kind registry.

The three kinds (``zarr_product``, ``cog_product``, ``parquet_product``) subclass ``ProductBase`` and
register themselves with ``@register``; ``api.open_product`` looks the kind up here. Modules that only
need an opened product (``stac``, ``xarray_view``) import this module, never ``api``, so no kind
imports the layer above it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from eocompress.errors import InputError

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from eocompress.embeddings.codecs.codec import Codec
    from eocompress.embeddings.products.grid import GridInfo, Window

#: Product kinds and the file names that select them (``product_kind`` reads this table, not the classes).
SUFFIXES: dict[str, tuple[str, ...]] = {
    "zarr": (".zarr",),
    "cog": (".tif", ".tiff"),
    "parquet": (".parquet", ".geoparquet", ".pq"),
}


@runtime_checkable
class Product(Protocol):
    """What readers of a finished product rely on, whatever its kind (chunks: see GridProduct, ChipProduct)."""

    kind: ClassVar[str]
    is_chips: ClassVar[bool]
    path: Path
    verify: bool

    @property
    def codec(self) -> Codec:
        """The codec that decodes the stored codes."""
        ...

    def stored_bytes(self) -> int:
        """Bytes the product takes on disk."""
        ...


@runtime_checkable
class GridProduct(Product, Protocol):
    """A product of a pixel grid (Zarr, COG): chunks are grid windows."""

    info: GridInfo
    chunk: int
    n_valid: int

    @property
    def rescore_codec(self) -> Codec | None:
        """The codec of the finer codes kept for re-ranking search results, or None."""
        ...

    def decode_chunk(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(float32 values (h, w, D), valid (h, w)) of one chunk, decoded."""
        ...

    def windows(self) -> list[Window]:
        """The grid's chunk windows, row-major."""
        ...

    def read_chunk(
        self, window: Window, verify: bool = True, rescore: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(codes (h, w, B), valid (h, w), rescore codes or None) of one chunk, checked when ``verify``."""
        ...


@runtime_checkable
class ChipProduct(Product, Protocol):
    """A product of chips (GeoParquet): chunks are row groups, each row a chip with a footprint and a time."""

    n_rows: int
    columns: list[str]

    def decompress(self, out: Path, overwrite: bool = False, progress: Callable[[int], None] | None = None) -> Path:
        """Write the chips back as GeoParquet with float32 embeddings."""
        ...

    def windows(self) -> list[int]:
        """The row-group indices, in storage order."""
        ...

    def read_chunk(
        self, index: int, verify: bool = True, rescore: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(codes (n, B), valid (n,), None) of one row group, checked when ``verify``."""
        ...

    def footprint(self) -> tuple[list[float], dict[str, Any]]:
        """(bbox, GeoJSON geometry) covering every chip."""
        ...

    def time_range(self) -> tuple[str | None, str | None]:
        """(first, last) acquisition time of the chips, ISO 8601, or None where unknown."""
        ...


#: Any opened product: the type ``api.open_product`` returns.
AnyProduct = GridProduct | ChipProduct


def is_chip_product(prod: AnyProduct) -> TypeIs[ChipProduct]:
    """True for a chip table (GeoParquet), False for a grid; reads the kind's class flag, never a lazy property.

    (``isinstance`` against the protocols would evaluate properties such as ``codec`` on Python 3.11.)
    """
    return prod.is_chips


class ProductBase:
    """Base of the product kinds: how one is opened (``check`` = verify digests) and which kind it is."""

    kind: ClassVar[str] = ""
    is_chips: ClassVar[bool] = False
    path: Path
    verify: bool = True

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> ProductBase:
        """Open a finished product of this kind; ``verify=False`` skips the digests (salvage only)."""
        prod = cls(path, check=verify)  # type: ignore[call-arg]
        prod.verify = verify
        return prod


_KINDS: dict[str, type[ProductBase]] = {}
P = TypeVar("P", bound=type[ProductBase])


def register(kind: str) -> Callable[[P], P]:
    """Class decorator: make ``cls`` the reader of products of ``kind`` (one of ``SUFFIXES``)."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown product kind {kind!r}; add it to SUFFIXES in {__name__}")

    def deco(cls: P) -> P:
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return deco


def product_class(kind: str) -> type[ProductBase]:
    """The registered class of a product kind."""
    try:
        return _KINDS[kind]
    except KeyError:  # api imports the three kinds, so this only happens when base is used on its own
        raise InputError(
            f"no reader is registered for {kind} products; open it with eocompress.embeddings.products.api"
        ) from None


def product_kind(path: str | os.PathLike) -> str:
    """``zarr``, ``cog`` or ``parquet`` from a product path (a directory is Zarr; else by name)."""
    path = Path(path)
    if path.is_dir():
        return "zarr"
    suffix = path.suffix.lower()
    for kind, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return kind
    raise InputError(f"cannot tell the product type of {path}; name it .zarr, .tif (int8 COG) or .parquet")


def open_cached(cls: type[ProductBase], path: str | os.PathLike, verify: bool = True) -> Any:
    """``cls.open(path)`` once per process and product version (re-opened when the file or store is replaced)."""
    st = os.stat(path)
    # a class is hashable; mypy checks type[ProductBase] against Hashable with the instances' __hash__
    return _open_cached(cls, str(path), st.st_ino, st.st_mtime_ns, verify)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=8)
def _open_cached(cls: type[ProductBase], path: str, inode: int, mtime_ns: int, verify: bool = True) -> Any:
    return cls.open(path, verify=verify)
