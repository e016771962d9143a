"""Where the real data lives: ``$EOCOMPRESS_DATA``, checked against a manifest of sha256 sums.

The development data (real Presto embeddings and Sentinel-2 GeoTIFFs) is not shipped with the
package. ``data_path`` finds a file under ``$EOCOMPRESS_DATA`` and, when it is missing, says
exactly which file is needed, where it comes from, and how to point eocompress at it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Literal, overload

from eocompress.errors import DataMissingError, FileFormatError

ENV_VAR = "EOCOMPRESS_DATA"

#: Named real data sets used by the demo, the tests and the benchmarks.
ALGAE = "embeddings/presto_algae_blooms.npz"
LULC = "embeddings/presto_lulc_slovenia.npz"
LULC_FIELD = "embeddings/presto_lulc_slovenia_embeddings.tif"
MAJORTOM_FIELD = "embeddings/presto_majortom_199U_1099R_256.tif"
IMAGERY = "imagery"


@functools.cache
def manifest() -> dict:
    """The packaged manifest: relative path -> {bytes, sha256}, plus provenance notes."""
    text = resources.files("eocompress").joinpath("data_manifest.json").read_text()
    return json.loads(text)


@overload
def data_dir(required: Literal[True] = ...) -> Path: ...
@overload
def data_dir(required: bool) -> Path | None: ...


def data_dir(required: bool = True) -> Path | None:
    """The data root from ``$EOCOMPRESS_DATA``; a clear error (or None) when it is unset or absent."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value and Path(value).is_dir():
        return Path(value)
    if not required:
        return None
    why = f"${ENV_VAR} points to {value!r}, which is not a folder" if value else f"${ENV_VAR} is not set"
    raise DataMissingError(
        f"{why}. Point it at the eocompress data folder (the Makefile uses ../shared/data when it "
        f"exists): export {ENV_VAR}=/path/to/data. Sources of each file: `eocompress data`."
    )


def data_path(relative: str, verify: bool = False) -> Path:
    """Absolute path of a data file under ``$EOCOMPRESS_DATA``; says what is missing and where it comes from."""
    root = data_dir()
    path = root / relative
    if not path.exists():
        top = relative.split("/")[0] + "/"
        source = manifest()["sources"].get(top, "see the data folder's README.md")
        raise DataMissingError(f"{path} is missing from ${ENV_VAR}={root}. It comes from: {source}")
    if verify and path.is_file():
        verify_file(relative)
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(relative: str) -> None:
    """Check a data file against the manifest's sha256; raise naming the file on mismatch."""
    expected = manifest()["files"].get(relative)
    if expected is None:
        return
    path = data_dir() / relative
    actual = sha256_file(path)
    if actual != expected["sha256"]:
        raise FileFormatError(
            f"{path} does not match the published file (sha256 {actual[:12]}…, expected "
            f"{expected['sha256'][:12]}…): it was modified or truncated; fetch it again"
        )


def status() -> list[tuple[str, str]]:
    """(relative path, 'ok' | 'missing' | 'modified') for every manifest file."""
    root = data_dir(required=False)
    rows = []
    for rel, meta in manifest()["files"].items():
        if root is None or not (root / rel).exists():
            rows.append((rel, "missing"))
        elif (root / rel).stat().st_size != meta["bytes"] or sha256_file(root / rel) != meta["sha256"]:
            rows.append((rel, "modified"))
        else:
            rows.append((rel, "ok"))
    return rows
