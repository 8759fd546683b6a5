"""dotlib.metrics against scikit-image / clean-fid / scipy (peers) and against theory."""

from __future__ import annotations

import io
import math
import urllib.request

import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image, ImageFilter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dotlib import metrics as M
from dotlib.gaussian import w2
from dotlib.metrics import sliced_wasserstein as swd_module
from dotlib.metrics.detail import DetailFrechet
from dotlib.metrics.paired import PairedBootstrap
from dotlib.pipeline import perception_models
from dotlib.data import load_photo, split_photos


# ----------------------------------------------------------------------------- helpers

def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).astype(np.float32) / 255).permute(2, 0, 1)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.stack([from_pil(to_pil(im).filter(ImageFilter.GaussianBlur(sigma))) for im in images])


def noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for image in images:
        buffer = io.BytesIO()
        to_pil(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out.append(from_pil(Image.open(buffer)))
    return torch.stack(out)


@pytest.fixture(scope="module")
def photo_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two real crops (astronaut, coffee) and a noisy-and-blurred version of them."""
    clean = torch.stack([load_photo("astronaut")[:, 100:228, 150:310],
                         load_photo("coffee")[:, 50:178, 200:360]])
    return clean, noise(blur(clean, 1.2), 0.04)


@pytest.fixture(scope="module")
def eval_tiles() -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint 64-px tiles of the eval photos, checkerboard-split into reference / evaluated."""
    reference, evaluated = [], []
    for name in split_photos("eval"):
        photo = load_photo(name)
        rows, cols = photo.shape[1] // 64, photo.shape[2] // 64
        for i in range(rows):
            for j in range(cols):
                tile = photo[:, 64 * i:64 * (i + 1), 64 * j:64 * (j + 1)]
                (reference if (i + j) % 2 == 0 else evaluated).append(tile)
    return torch.stack(reference), torch.stack(evaluated)


class RandomConvFeatures(torch.nn.Module):
    """A fixed random conv net: [B, 3, 299, 299] in [0, 255] -> [B, 32] (mean and std pooling)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU())
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.net(images / 255.0)
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1)


class RandomClassifier(RandomConvFeatures):
    """Class probabilities [B, 10] from the random features."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(10 * super().forward(images)[:, :10], dim=1)


@pytest.fixture(scope="module")
def extractor() -> M.CleanFeatures:
    return M.CleanFeatures(RandomConvFeatures(), name="random_conv", device="cpu")


# -------------------------------------------------------------------------- distortion

def test_psnr_ssim_match_skimage_on_photos(photo_pair):
    clean, degraded = photo_pair
    ours_psnr, ours_ssim = M.psnr(clean, degraded), M.ssim(clean, degraded)
    assert ours_psnr.dtype == ours_ssim.dtype == torch.float64 and ours_psnr.shape == (2,)
    for i in range(2):
        a = clean[i].permute(1, 2, 0).double().numpy()
        b = degraded[i].permute(1, 2, 0).double().numpy()
        ref_ssim = structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False)
        assert abs(float(ours_ssim[i]) - ref_ssim) < 1e-6
        assert abs(float(ours_psnr[i]) - peak_signal_noise_ratio(a, b, data_range=1.0)) < 1e-6
    assert 0.2 < float(ours_ssim.min()) < 0.95  # a real, non-trivial comparison


def test_distortion_identities(photo_pair):
    clean, degraded = photo_pair
    assert torch.all(M.psnr(clean, clean) == math.inf)
    assert torch.allclose(M.ssim(clean, clean), torch.ones(2, dtype=torch.float64))
    expected = (clean.double() - degraded.double()).pow(2).mean(dim=(1, 2, 3))
    assert torch.allclose(M.mse(clean, degraded), expected)
    with pytest.raises(ValueError, match="same shape"):
        M.psnr(clean, degraded[:, :, :64])
    with pytest.raises(ValueError, match="at least 11x11"):
        M.ssim(clean[..., :8, :8], clean[..., :8, :8])


# ------------------------------------------------------------------------------- LPIPS

_VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def reference_lpips(vgg_state: dict, lin_state: dict, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 (VGG16) written out with ``torch.nn.functional``, the reference for :class:`M.LPIPS`.

    The formula dotlib used to implement by hand: inputs [0, 1] -> [-1, 1], standardised by
    LPIPS's shift/scale; VGG16 ``features`` (3x3 convs + ReLU, 2x2 max-pools between blocks,
    torchvision's ``features.N`` numbering) tapped at the end of each block (relu1_2 ...
    relu5_3); each tap unit-normalised over channels; d = Σ_l mean_hw Σ_c w_lc (Δφ̂_lc)².
    """
    import torch.nn.functional as F

    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(images: torch.Tensor) -> list[torch.Tensor]:
        x, index, out = (2.0 * images.float() - 1.0 - shift) / scale, 0, []
        for block, widths in enumerate(_VGG16_BLOCKS):
            if block > 0:
                x, index = F.max_pool2d(x, kernel_size=2, stride=2), index + 1
            for _ in widths:
                weight, bias = vgg_state[f"features.{index}.weight"], vgg_state[f"features.{index}.bias"]
                x, index = F.relu(F.conv2d(x, weight, bias, padding=1)), index + 2
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    total = torch.zeros(a.shape[0], dtype=torch.float64)
    for level, (xa, xb) in enumerate(zip(taps(a), taps(b))):
        weight = lin_state[f"lin{level}.model.1.weight"].view(1, -1, 1, 1)
        total += (weight * (xa - xb).pow(2)).sum(dim=1).mean(dim=(1, 2)).double()
    return total


@pytest.fixture(scope="module")
def lpips_weights() -> tuple[dict, dict]:
    """Seeded random torchvision VGG16 state dict (conv biases made non-zero too, so that the bias
    mapping is exercised) and random non-negative linear layers, keyed like LPIPS's ``vgg.pth``."""
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(0)
        vgg_state = torchvision.models.vgg16().state_dict()
    generator = torch.Generator().manual_seed(0)
    for key, value in vgg_state.items():
        if key.startswith("features.") and key.endswith("bias"):
            vgg_state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    lin_state = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
                 for k, c in enumerate((64, 128, 256, 512, 512))}
    return vgg_state, lin_state


@pytest.fixture(scope="module")
def random_lpips(lpips_weights) -> M.LPIPS:
    """The lpips-package-based LPIPS on the random weights of ``lpips_weights``."""
    return M.LPIPS(*lpips_weights)


def lpips_test_pairs(photo_pair) -> tuple[torch.Tensor, torch.Tensor]:
    """64x64 pairs: three random-uniform pairs and two photo crops against a noisy version."""
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(3, 3, 64, 64, generator=generator)
    b = torch.rand(3, 3, 64, 64, generator=generator)
    clean = photo_pair[0][..., :64, :64]
    return torch.cat([a, clean]), torch.cat([b, noise(clean, 0.1)])


def test_lpips_package_matches_reference(photo_pair, lpips_weights, random_lpips):
    """Agreement with the hand-written formula to 1e-6 ABSOLUTE (values are O(0.1-1); measured ~1e-7)."""
    a, b = lpips_test_pairs(photo_pair)
    ours, reference = random_lpips(a, b), reference_lpips(*lpips_weights, a, b)
    assert ours.dtype == torch.float64 and ours.shape == (5,)
    assert float(reference.min()) > 0.01  # a non-trivial comparison
    assert float((ours - reference).abs().max()) <= 1e-6
    assert torch.all(random_lpips(a, a) == 0) and torch.all(reference_lpips(*lpips_weights, a, a) == 0)
    assert torch.all(random_lpips.to("cpu")(a, b) == ours)  # .to keeps it working


def test_lpips_from_cached_features_is_the_package_forward_bit_for_bit(photo_pair, random_lpips):
    """The evaluator passes the clean images through VGG16 once per batch (features, then distance):
    exactly the package's own forward, and the same whichever side the features were cached for."""
    a, b = lpips_test_pairs(photo_pair)
    package = random_lpips.net(a, b, normalize=True).reshape(-1).double()
    cached = random_lpips.features(b)
    assert torch.equal(random_lpips.distance(random_lpips.features(a), cached), package)
    assert torch.equal(random_lpips(a, b), package)


def test_lpips_computation_path(photo_pair, random_lpips):
    clean, _ = photo_pair
    clean = clean[..., :64, :64]
    net = random_lpips
    assert torch.all(net(clean, clean) == 0)
    mild, strong = net(clean, noise(clean, 0.05)), net(clean, noise(clean, 0.3))
    assert torch.all(mild > 0) and torch.all(strong > mild)
    assert torch.allclose(net(noise(clean, 0.05), clean), mild)
    with pytest.raises(ValueError, match="same shape"):
        net(clean, clean[..., :32])


def test_lpips_rejects_malformed_weights(lpips_weights):
    vgg_state, lin_state = lpips_weights
    with pytest.raises(ValueError, match="features"):
        M.LPIPS({"classifier.0.weight": torch.zeros(1)}, lin_state)
    with pytest.raises(ValueError, match="features.28"):
        M.LPIPS({k: v for k, v in vgg_state.items() if not k.startswith("features.28.")}, lin_state)
    with pytest.raises(ValueError, match=r"lin3"):
        M.LPIPS(vgg_state, {**lin_state, "lin3.model.1.weight": torch.rand(1, 256, 1, 1)})


def test_lpips_loads_from_disk_without_download(tmp_path, monkeypatch, photo_pair, lpips_weights):
    """load_lpips: trunk from a file (argument, $DOTLIB_LPIPS_VGG, hub cache), the package's calibrated
    linear weights, and no network: every download entry point lpips/torchvision could reach raises."""
    import warnings
    from pathlib import Path

    import lpips
    import torchvision.models._api

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    for module, name in ((torch.hub, "load_state_dict_from_url"), (torch.hub, "download_url_to_file"),
                         (torch.hub, "urlopen"), (torchvision.models._api, "load_state_dict_from_url"),
                         (urllib.request, "urlopen")):
        monkeypatch.setattr(module, name, no_network)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(M.LPIPS_VGG_ENV, raising=False)
    monkeypatch.delenv(M.LPIPS_LIN_ENV, raising=False)
    with pytest.raises(AssertionError, match="download"), torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation of ``pretrained=True``
        lpips.LPIPS(net="vgg", verbose=False)  # the trip wire catches the package's own default path

    vgg_state = {k: v for k, v in lpips_weights[0].items() if k.startswith("features.")}
    vgg_file = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    vgg_file.parent.mkdir(parents=True)
    torch.save(vgg_state, vgg_file)
    package_lin = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    lin_state = torch.load(package_lin, map_location="cpu", weights_only=True)
    a, b = lpips_test_pairs(photo_pair)
    expected = reference_lpips(vgg_state, lin_state, a, b)
    elsewhere = tmp_path / "elsewhere.pth"
    for where, kwargs in (("hub cache", {}), ("arguments", {"vgg_path": vgg_file, "lin_path": package_lin}),
                          ("environment", {})):
        if where == "environment":
            vgg_file.rename(elsewhere)
            monkeypatch.setenv(M.LPIPS_VGG_ENV, str(elsewhere))
        net = M.load_lpips("cpu", **kwargs)
        assert isinstance(net, M.LPIPS)
        assert float((net(a, b) - expected).abs().max()) <= 1e-6, where


def test_lpips_missing_weights_named(tmp_path, monkeypatch):
    monkeypatch.delenv(M.LPIPS_VGG_ENV, raising=False)
    monkeypatch.delenv(M.LPIPS_LIN_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(M.MetricUnavailable, match="vgg16-397923af.pth") as error:
        M.load_lpips()
    assert M.LPIPS_VGG_ENV in error.value.reason and "download.pytorch.org" in error.value.reason

    vgg_file = tmp_path / "vgg16.pth"
    vgg_file.touch()
    with pytest.raises(M.MetricUnavailable, match="vgg.pth") as error:
        M.load_lpips(vgg_path=vgg_file, lin_path=tmp_path / "nowhere.pth")
    assert "nowhere.pth" in error.value.reason and "pip install lpips" in error.value.reason

    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "lpips"
                        else find_spec(name, *args))
    with pytest.raises(M.MetricUnavailable, match="vgg.pth") as error:  # no package: no shipped weights
        M.load_lpips(vgg_path=vgg_file)
    assert M.LPIPS_LIN_ENV in error.value.reason and "pip install lpips" in error.value.reason
    with pytest.raises(M.MetricUnavailable, match="`lpips` package") as error:
        M.load_lpips(vgg_path=vgg_file, lin_path=vgg_file)
    assert "pip install lpips" in error.value.reason


# --------------------------------------------------------------------- clean-fid path

def test_inception_missing_is_reported_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv(M.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(M.inception, "_cleanfid_cache_dir", lambda: tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(M.MetricUnavailable, match="inception-2015-12-05.pt") as error:
        M.load_inception()
    reason = error.value.reason
    assert M.INCEPTION_ENV in reason and "https://" in reason and str(tmp_path) in reason
    monkeypatch.setenv(M.INCEPTION_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(M.MetricUnavailable, match="nowhere"):
        M.inception_file()


def test_fake_torchscript_inception_loads_through_cleanfid(tmp_path, monkeypatch, photo_pair):
    """The loading plumbing (file lookup, clean-fid's InceptionV3W, IS head) with a stand-in network."""

    class Stand(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(3, 2048, 1))
            self.output = torch.nn.Linear(2048, 1008)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.output(self.layers(x).flatten(1))

    torch.jit.script(Stand()).save(str(tmp_path / M.INCEPTION_FILE))
    monkeypatch.setenv(M.INCEPTION_ENV, str(tmp_path))
    clean, _ = photo_pair
    feats = M.load_inception(output="features")(clean)
    probs = M.load_inception(output="probabilities")(clean)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1008)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_fid_self_zero_and_grows_with_degradation(extractor):
    clean = torch.stack([load_photo(n)[:, 64 * i:64 * i + 96, 64 * j:64 * j + 96]
                         for n in split_photos("target") for i in range(3) for j in range(4)])
    reference = extractor(clean)
    assert reference.shape == (24, 32) and reference.dtype == np.float64
    assert M.fid(reference, reference) < 1e-8
    fids = [M.fid(extractor(noise(clean, s)), reference) for s in (0.02, 0.06, 0.15)]
    assert 0 < fids[0] < fids[1] < fids[2]
    # the unbiased MMD² of a set against itself is slightly negative (its diagonal is excluded)
    kids = [M.kid(extractor(noise(clean, s)), reference, subsets=5)[0] for s in (0.0, 0.06, 0.15, 0.3)]
    assert kids[0] < kids[1] < kids[2] < kids[3] and kids[3] > 10 * abs(kids[0])


def test_fid_and_kid_equal_cleanfid_on_features():
    from cleanfid.fid import fid_from_feats, kernel_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12))
    b = 0.5 + rng.standard_normal((250, 12)) @ rng.standard_normal((12, 12))
    assert M.fid(a, b) == pytest.approx(fid_from_feats(a, b), rel=1e-8)
    # with one subset covering every row, both KIDs use the same rows (order does not matter)
    ours, spread = M.kid(a[:250], b, subsets=3, subset_size=250)
    assert ours == pytest.approx(kernel_distance(a[:250], b, num_subsets=1, max_subset_size=250), rel=1e-10)
    assert spread < 1e-12 * abs(ours) + 1e-15


def test_same_code_path_for_folders_and_tensors(tmp_path, extractor, photo_pair):
    clean, _ = photo_pair
    for index, image in enumerate(clean):
        to_pil(image).save(tmp_path / f"{index}.png")
    assert np.allclose(extractor.folder(tmp_path), extractor(clean), rtol=1e-5, atol=1e-6)


def test_inception_score_theory():
    assert M.inception_score(np.full((20, 5), 0.2), splits=2) == pytest.approx((1.0, 0.0))
    one_hot = np.eye(4)[np.arange(48) % 4]
    mean, sd = M.inception_score(one_hot, splits=4)
    assert mean == pytest.approx(4.0) and sd == pytest.approx(0.0, abs=1e-12)


def test_perception_models_name_each_missing_weight_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(M.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(M.inception, "_cleanfid_cache_dir", lambda: tmp_path)
    features, classifier, lpips, missing = perception_models(torch.device("cpu"), lpips=False)
    assert features is None and classifier is None and lpips is None
    assert set(missing) == {"fid", "kid", "is", "lpips"} and missing["lpips"] == "disabled by the caller"
    assert all(M.INCEPTION_FILE in missing[name] for name in ("fid", "kid", "is"))


# ----------------------------------------------------------------- sliced Wasserstein

def test_laplacian_pyramid_reconstructs_exactly(photo_pair):
    clean, _ = photo_pair
    bands = M.laplacian_pyramid(clean.double(), 4)
    assert [b.shape[-1] for b in bands] == [160, 80, 40, 20]
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = band + swd_module._expand(image, band.shape[-2:])
    assert torch.allclose(image, clean.double(), atol=1e-12)


def test_grid_swd_equals_the_exact_sliced_w1_of_scipy(eval_tiles):
    """The CDF-grid integral is the exact 1-D W1 of each projection up to the grid step."""
    reference, evaluated = eval_tiles[0][:6], eval_tiles[1][:6]
    index = M.SlicedWasserstein(reference, directions=16, grid=4096)
    ours = index(evaluated).levels
    for level, (ref_band, band) in enumerate(zip(index.descriptors(reference), index.descriptors(evaluated))):
        a = index._project(band, level).permute(1, 0, 2).flatten(1).numpy()        # [dirs, N·P]
        b = index._project(ref_band, level).permute(1, 0, 2).flatten(1).numpy()
        low, high = index._grid[level][:, :1].numpy(), index._grid[level][:, -1:].numpy()
        a, b = np.clip(a, low, high), np.clip(b, low, high)                  # the definition clips to the grid
        exact = np.mean([scipy.stats.wasserstein_distance(a[d], b[d]) for d in range(a.shape[0])])
        assert ours[level] == pytest.approx(exact, rel=2e-3, abs=1e-4)


def test_swd_and_detail_of_a_flat_image_are_finite_and_larger_than_a_mild_blur(eval_tiles):
    reference, evaluated = eval_tiles
    flat = torch.full_like(evaluated, 0.5)
    swd_index, detail_index = M.SlicedWasserstein(reference), DetailFrechet(reference)
    swd_flat, swd_blur = swd_index(flat).mean, swd_index(blur(evaluated, 1.0)).mean
    assert math.isfinite(swd_flat) and swd_flat > swd_blur > swd_index(evaluated).mean
    detail_flat, detail_blur = detail_index(flat), detail_index(blur(evaluated, 1.0))
    assert detail_flat == pytest.approx(1.0, abs=0.01) and detail_flat > detail_blur > detail_index(evaluated)


def test_detail_index_ignores_colour_and_sees_noise(eval_tiles):
    reference, evaluated = eval_tiles
    index = DetailFrechet(reference)
    tinted = (evaluated * torch.tensor([1.0, 0.95, 0.9]).view(1, 3, 1, 1)).clamp(0, 1)
    assert index(reference) == 0.0
    assert index(tinted) < 0.5 * index(noise(evaluated, 10 / 255))


def test_detail_distance_is_w2_per_band_relative_to_the_reference_energy():
    generator = torch.Generator().manual_seed(4)
    index = DetailFrechet(torch.rand(3, 3, 64, 64, generator=generator))
    stats = index.image_stats(torch.rand(4, 3, 64, 64, generator=generator))       # [images, bands, S]
    batched = index.distance(stats)
    assert batched.shape == (4, index.bands) and batched.dtype == torch.float64
    mean_b, cov_b = index._gaussian(index.reference_stats)
    for image in range(4):
        mean_a, cov_a = index._gaussian(stats[image])
        for band in range(index.bands):
            expected = w2(mean_a[band], cov_a[band], mean_b[band], cov_b[band]) / cov_b[band].trace().item()
            assert batched[image, band].item() == pytest.approx(expected, rel=1e-12)


def test_paired_bootstrap_of_a_set_against_itself_is_zero(eval_tiles):
    reference = eval_tiles[0][:12]
    photos = [f"photo{i // 2}" for i in range(12)]
    paired = PairedBootstrap(reference, photos, baseline="restored", n_resamples=30, swd_options={"directions": 32})
    paired.update(reference, {"x": reference, "restored": blur(reference, 1.5)})
    paired.update(reference, {"same": blur(reference, 1.5)}, range(12))
    measured = paired.compute()
    clean = measured["x"]
    assert clean["swd"] == clean["swd_sd"] == clean["detail"] == clean["detail_sd"] == clean["mse"] == 0.0
    same = paired.difference("same", "restored")
    assert all(value == 0.0 for value in same.values())            # [0, 0] for every metric
    assert measured["same"]["d_swd"] == measured["same"]["d_detail_hi"] == 0.0
    gap = paired.difference("x", "restored")                        # the clean set beats the blurred one
    np.testing.assert_equal({key: measured["x"][key] for key in gap}, gap)   # NaN-aware
    assert gap["d_psnr"] == math.inf or gap["d_mse_hi"] < 0
    assert gap["d_swd_hi"] < 0 and gap["d_detail_hi"] < 0
    assert gap["d_swd_lo"] <= gap["d_swd"] <= gap["d_swd_hi"]
    assert list(measured) == ["x", "restored", "same"]
    assert all(row["n_photos"] == 6 and row["n_crops"] == 12 for row in measured.values())
    with pytest.raises(ValueError, match="already measured"):
        paired.update(reference, {"x": reference})
    with pytest.raises(ValueError, match="whole set of 12 crops"):
        paired.update(reference[:4], {"part": reference[:4]}, range(4))
    with pytest.raises(ValueError, match="same clean set"):
        paired.update(blur(reference, 1.5), {"other": reference})


def test_swd_ranks_degradations_on_eval_photos(eval_tiles):
    """Reference: natural tiles disjoint from the evaluated ones (checkerboard over the eval photos)."""
    reference, evaluated = eval_tiles
    index = M.SlicedWasserstein(reference)
    assert index.levels == 3
    clean = index(evaluated).mean
    assert index(reference).mean == 0.0
    for name, degrade, (mild, strong) in [("blur", blur, (1.0, 3.0)),
                                          ("noise", noise, (5 / 255, 25 / 255)),
                                          ("jpeg", jpeg, (20, 5))]:
        scores = [index(degrade(evaluated, mild)).mean, index(degrade(evaluated, strong)).mean]
        assert clean < scores[0] < scores[1], f"{name}: clean {clean:.4f}, mild/strong {scores}"


def test_swd_bootstrap_spread_is_deterministic(eval_tiles):
    reference, evaluated = eval_tiles[0][:20], eval_tiles[1][:20]
    index = M.SlicedWasserstein(reference, directions=64)
    first, second = index(evaluated, n_bootstrap=8, seed=3), index(evaluated, n_bootstrap=8, seed=3)
    assert first == second and 0 < first.sd < first.mean
    assert len(first.levels) == 3 and first.mean == pytest.approx(np.mean(first.levels))
    assert M.swd(evaluated, reference, directions=64).mean == pytest.approx(first.mean)
