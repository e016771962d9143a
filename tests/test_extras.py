"""The embedding half runs without the imagery extras; the imagery half names the extra it needs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from eocompress._extras import EXTRAS, extra_for, missing

ROOT = Path(__file__).resolve().parents[1]
# Hide the imagery/training libraries the way an environment without them behaves: a finder in front of
# sys.meta_path answers ModuleNotFoundError for them (sys.modules[m] = None would also break scipy's torch probe).
BLOCK = """import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {mods!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def _run(code: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(mods=list(blocked)) + textwrap.dedent(code)
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


def test_embedding_half_runs_without_imagery_extras(tmp_path: Path) -> None:
    out = tmp_path / "codes.npz"
    res = _run(
        f"""
        import numpy as np
        from eocompress import Codec
        X = np.random.default_rng(0).normal(size=(500, 32)).astype("float32")
        codes = Codec("pca8,int8").fit(X).encode(X)
        assert codes.shape == (500, 8), codes.shape
        np.save({str(out)!r}, X)
        from eocompress.cli import main
        main(["encode", {str(out) + ".npy"!r}, "--codec", "int8", "-o", {str(out)!r}])
        """,
        EXTRAS["train"],
    )
    assert res.returncode == 0, res.stderr
    assert out.exists()


def test_imagery_command_without_torch_names_the_extra(tmp_path: Path) -> None:
    res = _run(
        """
        from eocompress.cli import main
        main(["imagery", "decode", "missing.eotok", "-o", "x.tif"])
        """,
        ("torch",),
    )
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "pip install 'eocompress[imagery]'" in lines[0]
    assert "Traceback" not in res.stderr


def test_library_import_without_torch_names_the_extra() -> None:
    res = _run("import eocompress.imagery.codec\n", ("torch",))
    assert res.returncode != 0
    assert "eocompress[imagery]" in res.stderr.splitlines()[-1]


def test_extras_match_pyproject() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"]).lower()
    assert "torch" not in core and "lightning" not in core, "the embedding half must not require torch"
    extras = meta["optional-dependencies"]
    assert any(d.startswith("torch") for d in extras["imagery"])
    assert any(d.startswith("lightning") for d in extras["train"])
    assert extra_for("torch.nn") == "imagery" and extra_for("lightning.pytorch") == "train"
    assert extra_for("numpy") is None


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_dev_environment_has_every_extra(extra: str) -> None:
    assert missing(extra) == []
