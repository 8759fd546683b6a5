"""Issue #12: every bad input is caught at dotlib's public boundaries (dotlib.validate and its users)."""

import json
import math
import shutil
import time
import warnings

import pytest
import torch
from safetensors.torch import save_file

from dotlib import encoders, validate
from dotlib.io import read_safetensors
from dotlib.latent_ot import LatentOT
from dotlib.validate import check_device, check_images


def images(n=2, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------ images


def test_check_images_reports_extremes_at_full_precision():
    x = images()
    check_images(x)
    x[1, 2, 3, 4] = 1.0000001  # float32: 1.00000011920929
    with pytest.raises(ValueError) as raised:
        check_images(x)
    message = str(raised.value)
    assert "must lie in [0, 1]" in message and "1.0000001192092896" in message
    assert "1 of 1536 outside" in message and "(1, 2, 3, 4)" in message
    x = x.double()
    x[1, 2, 3, 4] = -1e-12  # float64: would print as "-1e-12", never as "0"
    with pytest.raises(ValueError, match=r"values in \[-1e-12, "):
        check_images(x)


def test_check_images_counts_non_finite_values_and_locates_the_first():
    x = images()
    x[0, 1, 2, 3], x[1, 0, 0, 0], x[1, 0, 0, 1] = math.nan, math.inf, -math.inf
    with pytest.raises(ValueError, match=r"3 of 1536 values are not \(1 NaN, 1 \+inf, 1 -inf\); "
                                         r"the first is at index \(0, 1, 2, 3\)"):
        check_images(x)


@pytest.mark.parametrize("bad, error, match", [
    ([[0.5]], TypeError, "torch.Tensor"),
    (torch.rand(3, 8, 8), ValueError, r"\[B, 3, H, W\]"),
    (torch.rand(1, 4, 8, 8), ValueError, r"\[B, 3, H, W\]"),
    ((torch.rand(1, 3, 8, 8) * 255).to(torch.uint8), TypeError, "float"),
    (torch.rand(0, 3, 8, 8), ValueError, "empty"),
    (torch.rand(1, 3, 8, 8) * 255, ValueError, "divided by 255"),
])
def test_check_images_refuses_wrong_kinds(bad, error, match):
    with pytest.raises(error, match=match):
        check_images(bad)


def test_encoders_use_the_one_image_validator():
    assert encoders.check_images is validate.check_images


def test_metrics_refuse_images_outside_0_1():
    from dotlib.metrics import mse, psnr

    x = images()
    assert float(psnr(x, x.clamp(0.1, 0.9)).mean()) > 0
    with pytest.raises(ValueError, match=r"a must lie in \[0, 1\].*divided by 255"):
        psnr(x * 255, x)  # was -23 dB, silently
    with pytest.raises(ValueError, match="b must be finite"):
        mse(x, torch.full_like(x, math.nan))
    with pytest.raises(ValueError, match=r"images\[1\] must lie in \[0, 1\]"):
        from dotlib.metrics.inputs import as_list
        as_list([x[0], x[1] * 2], "images")


# ----------------------------------------------------------------------- devices


@pytest.mark.cuda
def test_check_device_accepts_what_exists_and_explains_the_rest():
    assert check_device("cpu") == torch.device("cpu") == check_device("cpu:0") == check_device(torch.device("cpu"))
    for bad in ("cpu:1", "garbage", "cuda:99", "tpu"):
        with pytest.raises(ValueError, match=f"device '{bad}'.*this machine has: cpu"):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            check_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="MPS is not available here"):
            check_device("mps")
    with pytest.raises(TypeError, match="string or torch.device"):
        check_device(0.5)


@pytest.mark.cuda
def test_public_entry_points_check_their_device():
    from dotlib.encoders import load_encoder
    from dotlib.restorers import get_restorer

    with pytest.raises(ValueError, match="'cpu:1' does not exist"):
        load_encoder("pixel", device="cpu:1")
    with pytest.raises(ValueError, match="'garbage' is not a device name"):
        get_restorer("bicubic", "sr4", device="garbage")
    with pytest.raises(ValueError, match="'cuda:99'"):
        LatentOT("pixel", patch_size=3, device="cuda:99")
    with pytest.raises(ValueError, match="'cuda:99'"):
        LatentOT(load_encoder("pixel"), patch_size=3, device="cuda:99")


# ------------------------------------------------------------------ default_alphas


def test_default_alphas_never_overshoot_and_include_stop():
    from dotlib.study import default_alphas

    assert default_alphas(0, 1, 0.3) == [0, 0.3, 0.6, 0.9, 1.0]
    assert default_alphas(0, 1, 0.25) == [0, 0.25, 0.5, 0.75, 1.0]
    alphas = default_alphas()
    assert len(alphas) == 31 and alphas[0] == -1.0 and alphas[-1] == 2.0 and 0.0 in alphas and 1.0 in alphas
    assert all(b > a for a, b in zip(alphas, alphas[1:]))
    for bad in ((0, 1, 0), (0, 1, -0.1), (1, 0, 0.1), (0, math.inf, 0.1), (0, 1, math.nan)):
        with pytest.raises(ValueError):
            default_alphas(*bad)


# ------------------------------------------------------------- LatentOT settings


def test_a_huge_patch_size_fails_at_once_saying_the_dimension():
    began = time.perf_counter()
    with pytest.raises(ValueError, match=r"patch_size 37 .* 3·37² = 4107 dimensions.*patch_size <= 35"):
        LatentOT("pixel", patch_size=37)
    with pytest.raises(ValueError, match="30000600003 dimensions"):  # 7e12 GiB: never allocated
        LatentOT("pixel", patch_size=100001)
    assert time.perf_counter() - began < 5
    assert LatentOT("pixel", patch_size=35).dim == 3675


def test_fitting_on_fewer_patches_than_dimensions_warns():
    model = LatentOT("pixel", patch_size=5)  # 75 dimensions
    model.update(images(1, 8), "source").update(images(8, 16, seed=1), "target")  # 16 and 8·144 patches
    with pytest.warns(UserWarning, match=r"source statistics hold 16 patches for 75-dimensional patches.*singular"):
        model.fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.update(images(8, 16, seed=2), "source").fit()  # enough patches now: no warning


# --------------------------------------------------------------- LatentOT files


def _tiny_vae(folder, seed=0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                  norm_num_groups=4).save_pretrained(folder)


def test_an_operator_follows_its_vae_folder_by_fingerprint(tmp_path):
    _tiny_vae(tmp_path / "vae")
    x = images(2, 16)
    model = LatentOT(tmp_path / "vae", patch_size=3).update(x, "source").update(x ** 2, "target")
    model.fit()
    path = model.save(tmp_path / "op.safetensors")
    shutil.move(tmp_path / "vae", tmp_path / "moved")
    with pytest.raises(FileNotFoundError) as raised:
        LatentOT.load(path)
    message = str(raised.value)
    assert str(path) in message and str(tmp_path / "vae") in message
    assert "pass encoder=<folder> (matched by its weights' fingerprint)" in message
    loaded = LatentOT.load(path, encoder=tmp_path / "moved")
    assert torch.equal(loaded.transport(x), model.transport(x))
    _tiny_vae(tmp_path / "other", seed=1)  # same architecture, other weights: another latent space
    with pytest.raises(ValueError, match="fitted with encoder"):
        LatentOT.load(path, encoder=tmp_path / "other")


@pytest.fixture()
def operator_file(tmp_path):
    x = images(2, 16)
    model = LatentOT("pixel", patch_size=3).update(x, "source").update(x.sqrt(), "target")
    model.fit()
    return model.save(tmp_path / "op.safetensors")


def _rewrite(path, tensors=None, metadata=None):
    old_metadata, old_tensors = read_safetensors(path)
    save_file(tensors if tensors is not None else old_tensors, str(path),
              metadata=metadata if metadata is not None else old_metadata)


def test_damaged_or_altered_operator_files_are_named(operator_file):
    assert LatentOT.load(operator_file).fitted
    data = operator_file.read_bytes()
    cases = {
        "not safetensors": lambda: operator_file.write_bytes(b"just some text, no header"),
        "truncated": lambda: operator_file.write_bytes(data[: len(data) // 2]),
        "broken JSON": lambda: _rewrite(operator_file, metadata={"dotlib": '{"format": "dotlib.LatentOT", '}),
        "missing key": lambda: _rewrite(operator_file, metadata={"dotlib": json.dumps(
            {k: v for k, v in json.loads(read_safetensors(operator_file)[0]["dotlib"]).items() if k != "patch_size"})}),
        "wrong shape": lambda: _rewrite(operator_file, tensors={
            **read_safetensors(operator_file)[1], "source.mean": torch.zeros(26, dtype=torch.float64)}),
        "wrong count": lambda: _rewrite(operator_file, tensors={
            **read_safetensors(operator_file)[1], "target.count": torch.tensor(3)}),
        "NaN": lambda: _rewrite(operator_file, tensors={
            **read_safetensors(operator_file)[1], "operator.A": torch.full((27, 27), math.nan, dtype=torch.float64)}),
    }
    matches = {"not safetensors": "not a readable safetensors file", "truncated": "not a readable safetensors file",
               "broken JSON": "not valid JSON", "missing key": "patch_size missing",
               "wrong shape": r"source.mean has shape \(26,\), expected \(27,\)",
               "wrong count": "target.count is 3 but the metadata records", "NaN": "operator.A holds NaN"}
    for name, damage in cases.items():
        operator_file.write_bytes(data)
        damage()
        with pytest.raises(ValueError, match=matches[name]) as raised:
            LatentOT.load(operator_file)
        assert str(operator_file) in str(raised.value), name


# ---------------------------------------------------------------- atomic writes


def test_saves_are_atomic(tmp_path, monkeypatch):
    import dotlib.latent_ot as latent_ot
    from dotlib.restorers import ResidualShuffleCNN, save_mse_net

    x = images(2, 16)
    model = LatentOT("pixel", patch_size=3).update(x, "source").update(x.sqrt(), "target")
    model.fit()
    path = model.save(tmp_path / "op.safetensors")
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(latent_ot, "save_file", broken_save_file)
    other = LatentOT("pixel", patch_size=3).update(x, "source").update(x ** 2, "target")
    other.fit()
    with pytest.raises(OSError, match="disk full"):
        other.save(path)                  # a different operator: the file is rewritten, and the write fails
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["op.safetensors"]
    monkeypatch.undo()

    net = ResidualShuffleCNN(scale=1, body_factor=2, channels=8, depth=2)
    import safetensors.torch
    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_mse_net(net, tmp_path / "net" / "awgn50.safetensors", "awgn50")
    assert list((tmp_path / "net").iterdir()) == []


def test_save_pretrained_replaces_each_file_atomically(tmp_path):
    from dotlib.training import save_pretrained_atomic

    _tiny_vae(tmp_path / "first")
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tmp_path / "first")
    save_pretrained_atomic(vae, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "out"]  # no temporary folder left
    assert encoders.weights_fingerprint(tmp_path / "out") == encoders.weights_fingerprint(tmp_path / "first")


def test_values_checked_at_once_are_refused_by_name_even_inside_values_checked() -> None:
    from dotlib.validate import check_values, check_values_at_once, values_checked

    good, bad = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4) * 3.0
    check_values_at_once({"good": good, "also": good})
    with values_checked():
        check_values(bad, "bad")   # trusted: the caller checked it
        with pytest.raises(ValueError, match="bad must lie in"):
            check_values_at_once({"good": good, "bad": bad})
        with pytest.raises(ValueError, match="empty is empty"):
            check_values_at_once({"empty": torch.empty(0, 3, 4, 4)})
