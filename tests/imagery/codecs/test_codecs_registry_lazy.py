"""The codec registry holds factories: the anchors encode and decode a real scene without torch being imported;
torch comes in with the first ``get_codec("learned")``. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.realdata

_ANCHORS_ONLY = """
import json, sys
import numpy as np
import eocompress.imagery.codecs as codecs
from eocompress.imagery.readers.scenes import read_scene

seen = {"import": "torch" in sys.modules}
scene = read_scene(sys.argv[1]).crop(200, 200, 64, 64)
for name in ("jpeg2000", "klt+jpeg2000", "jpegxl"):
    codec = codecs.get_codec(name)
    dn, georef = codec.decode(codec.encode(scene, ratio=50))
    assert dn.shape == (len(codec.bands), 64, 64) and dn.dtype == np.uint16, name
    seen[name] = "torch" in sys.modules
seen["names"] = codecs.codec_names()
codecs.get_codec("learned")
seen["learned"] = "torch" in sys.modules
print(json.dumps(seen))
"""


def test_anchors_never_import_torch_the_learned_codec_does(data_root) -> None:
    scene = data_root / "imagery/oscd-s2l1c/abudhabi/imgs_1"
    run = subprocess.run([sys.executable, "-c", _ANCHORS_ONLY, str(scene)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["import"] is False and seen["jpeg2000"] is False
    assert seen["klt+jpeg2000"] is False and seen["jpegxl"] is False
    assert seen["learned"] is True  # asked for by name: now it is loaded
    assert {"learned", "jpeg2000", "klt+jpeg2000", "jpegxl"} <= set(seen["names"])  # registered, not imported
