"""The codec commands of the CLI: list, encode, decode, errors as one line with exit 1."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.cli import main


def run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0)


def test_codecs_lists_every_form(capsys) -> None:
    assert run(["codecs"]) == 0
    out = capsys.readouterr().out
    for form in ["pca{d}", "opq{M}", "int4", "ternary", "aef-int8", "pq{M}"]:
        assert form in out


def test_help_on_every_command(capsys) -> None:
    assert run(["--help"]) == 0
    for cmd in ["codecs", "encode", "decode", "demo", "data"]:
        assert run([cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_encode_decode_roundtrip_keeps_labels(tmp_path, lulc, capsys) -> None:
    src = tmp_path / "vectors.npz"
    np.savez(src, X=lulc["X"][:2000], y=lulc["y"][:2000])
    train = tmp_path / "train.npy"
    np.save(train, lulc["X"][2000:6000])
    codes = tmp_path / "codes.npz"
    assert run(["encode", str(src), "--codec", "pca32,int8", "--fit", str(train), "--out", str(codes),
                "--save-codec", str(tmp_path / "codec.json")]) == 0
    assert "32 B/vector" in capsys.readouterr().out
    with np.load(codes) as npz:
        assert npz["codes"].shape == (2000, 32)
        np.testing.assert_array_equal(npz["y"], lulc["y"][:2000])
    out = tmp_path / "decoded.npz"
    assert run(["decode", str(codes), "--out", str(out)]) == 0
    with np.load(out) as npz:
        X_hat = npz["X"]
        np.testing.assert_array_equal(npz["y"], lulc["y"][:2000])
    X = lulc["X"][:2000]
    assert ((X - X_hat) ** 2).sum() / ((X - X.mean(0)) ** 2).sum() < 0.05
    # the saved codec reproduces the codes exactly
    codes2 = tmp_path / "codes2.npz"
    assert run(["encode", str(src), "--codec-file", str(tmp_path / "codec.json"), "--out", str(codes2)]) == 0
    with np.load(codes) as a, np.load(codes2) as b:
        np.testing.assert_array_equal(a["codes"], b["codes"])


def test_bad_input_is_one_line_and_leaves_no_output(tmp_path, capsys) -> None:
    src = tmp_path / "v.npy"
    X = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    X[3, 2] = np.nan
    np.save(src, X)
    out = tmp_path / "codes.npz"
    assert run(["encode", str(src), "--codec", "int8", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "1 NaN" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]

    assert run(["encode", str(src), "--codec", "int9", "--out", str(out)]) == 1
    assert "did you mean" in capsys.readouterr().err

    np.save(src, np.ones((4, 8), np.float32))
    out.write_bytes(b"keep me")
    assert run(["encode", str(src), "--codec", "int8", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"


def test_save_codec_and_out_never_overwrite_without_flag(tmp_path, capsys) -> None:
    src = tmp_path / "v.npy"
    np.save(src, np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    saved = tmp_path / "codec.json"
    saved.write_text("keep")
    (tmp_path / "codec.npz").write_bytes(b"keep")
    out = tmp_path / "codes.npz"
    assert run(["encode", str(src), "--codec", "int8", "-o", str(out), "--save-codec", str(saved)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert saved.read_text() == "keep" and (tmp_path / "codec.npz").read_bytes() == b"keep" and not out.exists()
    assert run(["encode", str(src), str(out), "--codec", "int8", "--save-codec", str(saved), "--overwrite"]) == 0
    assert saved.read_text() != "keep"
    # positional OUT and -o agree or are refused
    assert run(["decode", str(out), str(tmp_path / "a.npy"), "-o", str(tmp_path / "b.npy")]) == 1
    assert run(["decode", str(out), str(tmp_path / "a.npy")]) == 0 and (tmp_path / "a.npy").exists()
    assert run(["decode", str(out), "-o", str(tmp_path)]) == 1
    assert "folder" in capsys.readouterr().err and any(tmp_path.iterdir())


def test_codecs_json(capsys) -> None:
    import json

    assert run(["codecs", "--json"]) == 0
    forms = {row["form"] for row in json.loads(capsys.readouterr().out)}
    assert {"int8", "pq{M}", "pca{d}"} <= forms


def test_flipped_byte_in_codes_file_is_one_line(tmp_path, capsys) -> None:
    src = tmp_path / "v.npy"
    np.save(src, np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    out = tmp_path / "codes.npz"
    assert run(["encode", str(src), "--codec", "int8", "-o", str(out)]) == 0
    blob = bytearray(out.read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    out.write_bytes(bytes(blob))
    assert run(["decode", str(out), "-o", str(tmp_path / "d.npy")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and "BadZipFile" not in err.split(":")[0]
