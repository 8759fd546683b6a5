"""Streamed metric accumulators equal their one-shot counterparts, whatever the batching or the processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dotlib.gaussian import frechet, root_factor, w2
from dotlib.metrics import CleanFeatures, fid, inception_score, kid, mse, psnr, ssim
from dotlib.metrics.detail import DetailFrechet
from dotlib.metrics.streaming import (FeatureGaussian, FeatureSample, PerImageMeans, SetCDF, SplitScores,
                                      hash_priority)
from dotlib.metrics.sliced_wasserstein import SlicedWasserstein, laplacian_pyramid
from dotlib.metrics.streaming_evaluator import StreamingEvaluator


def _images(count: int, size: int = 48, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(count, 3, size, size, generator=generator), 3, 1, 1)
    return (0.7 * smooth + 0.3 * torch.rand(count, 3, size, size, generator=generator)).clamp(0, 1)


def _probabilities(count: int, classes: int = 7, seed: int = 1) -> np.ndarray:
    logits = np.random.default_rng(seed).standard_normal((count, classes)) * 2.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_split_scores_equal_chunked_inception_score() -> None:
    p = _probabilities(60)
    scores = SplitScores(classes=7, splits=4)
    for start in (0, 17, 40):   # uneven batches
        stop = {0: 17, 17: 40, 40: 60}[start]
        scores.update(p[start:stop], np.arange(start, stop))
    order = np.concatenate([np.arange(split, 60, 4) for split in range(4)])   # split s = images i ≡ s (mod 4)
    expected = inception_score(p[order], splits=4)
    np.testing.assert_allclose(scores.compute(), expected, rtol=1e-12)


def test_split_scores_refuse_empty_splits() -> None:
    scores = SplitScores(classes=7, splits=10)
    scores.update(_probabilities(5), np.arange(5))
    with pytest.raises(ValueError, match="hold no image"):
        scores.compute()


def test_feature_sample_keeps_everything_below_capacity_and_is_order_free() -> None:
    feats = np.random.default_rng(3).standard_normal((40, 5))
    ref = np.random.default_rng(4).standard_normal((40, 5))
    full, reference = FeatureSample(capacity=100, seed=2), FeatureSample(capacity=100, seed=2)
    full.update(feats, np.arange(40))
    reference.update(ref, np.arange(40))
    np.testing.assert_allclose(full.sorted_features(), feats.astype(np.float32), rtol=0)
    assert full.compute(reference, subsets=5, subset_size=20) == pytest.approx(
        kid(feats.astype(np.float32), ref.astype(np.float32), 5, 20, seed=2), rel=1e-12)
    # below capacity: the lowest hash priorities, the same set however the images arrive
    small_a, small_b = FeatureSample(capacity=9, seed=2), FeatureSample(capacity=9, seed=2)
    small_a.update(feats, np.arange(40))
    for index in np.random.default_rng(5).permutation(40):
        small_b.update(feats[index:index + 1], [index])
    expected = np.sort(np.argsort(hash_priority(np.arange(40), 2))[:9])
    np.testing.assert_array_equal(np.sort(small_a.index), expected)
    np.testing.assert_array_equal(small_a.sorted_features(), small_b.sorted_features())
    np.testing.assert_array_equal(small_b.sorted_features(), feats[expected].astype(np.float32))   # rows replaced in place


def test_hash_priorities_look_uniform() -> None:
    priority = hash_priority(np.arange(20000), seed=0).astype(np.float64) / 2.0 ** 64
    assert abs(priority.mean() - 0.5) < 0.01 and abs(priority.std() - (1 / 12) ** 0.5) < 0.01
    assert not np.array_equal(hash_priority(np.arange(10), 0), hash_priority(np.arange(10), 1))


def test_per_image_means_and_feature_gaussian_equal_one_shot_values() -> None:
    values = np.random.default_rng(6).standard_normal(23) * 3 + 10
    means = PerImageMeans(("psnr",))
    for chunk in np.array_split(values, 4):
        means.update({"psnr": torch.from_numpy(chunk)})
    out = means.compute()
    assert out["psnr"] == pytest.approx(values.mean(), rel=1e-14)
    assert out["psnr_sd"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    a = np.random.default_rng(7).standard_normal((50, 4))
    b = np.random.default_rng(8).standard_normal((60, 4)) + 0.5
    ga, gb = FeatureGaussian(4), FeatureGaussian(4)
    for chunk in np.array_split(a, 3):
        ga.update(chunk)
    gb.update(b)
    assert ga.compute(gb) == pytest.approx(fid(a, b), rel=1e-10)


def test_feature_gaussian_of_small_sets_keeps_the_reference_root_and_equals_w2() -> None:
    rng = np.random.default_rng(9)
    sets = [FeatureGaussian(64) for _ in range(3)]
    for count, accumulator in zip((40, 200, 30), sets):
        accumulator.update(rng.standard_normal((count, 64)) * np.linspace(0.5, 2.0, 64) + 0.1)
    reference = sets[0]
    root = reference.root()
    assert root.shape == (64, 39)  # 40 images: rank 39
    torch.testing.assert_close(root, root_factor(reference.stats.cov), rtol=0, atol=0)
    for other in sets[1:]:
        a, b = other.stats, reference.stats
        assert other.compute(reference) == pytest.approx(w2(a.mean, a.cov, b.mean, b.cov), rel=1e-12)
        assert other.compute(reference) == frechet(a.mean, a.cov, b.mean, b.cov).item()
    assert reference.root() is root


def test_band_sums_equal_the_detail_index_and_set_cdf_is_batching_free() -> None:
    images, reference = _images(6), _images(5, seed=9)
    detail = DetailFrechet(reference)
    swd = SlicedWasserstein(reference, patches_per_image=32, directions=16, grid=32)
    assert detail.levels == swd.levels
    from dotlib.metrics.streaming import BandSums

    streamed, streamed_ref = BandSums(detail), BandSums(detail)
    streamed_ref.update_from_pyramid(laplacian_pyramid(reference, detail.levels))
    by_one, together = SetCDF(swd), SetCDF(swd)
    for index in range(6):
        bands = laplacian_pyramid(images[index:index + 1], detail.levels)
        streamed.update_from_pyramid(bands)
        by_one.update_from_pyramid(bands, [index])
    together.update_from_pyramid(laplacian_pyramid(images, swd.levels), list(range(6)))
    assert streamed.compute(streamed_ref) == pytest.approx(detail(images), rel=1e-6)
    assert by_one.compute(together) == 0.0
    torch.testing.assert_close(by_one.mean_cdf(), together.mean_cdf(), rtol=0, atol=1e-6)
    assert together.compute(together) == 0.0


class _RandomFeatures(torch.nn.Module):
    """A fixed random feature net standing in for Inception: [B, 3, 299, 299] in [0, 255] -> [B, 16]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 9, stride=8)

    @torch.no_grad()
    def forward(self, x):
        return torch.relu(self.conv(x / 255.0 - 0.5)).mean(dim=(2, 3))


def _evaluate(batch: int, clean, signals, features, classifier, lpips=None) -> dict:
    evaluator = StreamingEvaluator(clean[:3], features=features, classifier=classifier, lpips=lpips,
                                   kid_capacity=64, kid_subsets=5, kid_subset_size=4, is_splits=2,
                                   swd_options={"patches_per_image": 32, "directions": 16, "grid": 32})
    for start in range(0, clean.shape[0], batch):
        part = slice(start, start + batch)
        evaluator.update(clean[part], {k: v[part] for k, v in signals.items()}, range(start, min(start + batch, 8)))
    return evaluator.compute()


def test_streaming_evaluator_is_batching_free_and_matches_one_shot_metrics() -> None:
    clean = _images(8)
    star = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, 1, 1)
    signals = {"x_star": star, "blur": blurred}
    features = CleanFeatures(_RandomFeatures(), name="random")
    classifier = torch.randn(5, 16, generator=torch.Generator().manual_seed(2))
    one = _evaluate(1, clean, signals, features, classifier)
    three = _evaluate(3, clean, signals, features, classifier)
    for name in signals:
        assert one[name]["n_images"] == three[name]["n_images"] == 8
        for key, value in one[name].items():
            assert three[name][key] == pytest.approx(value, rel=1e-6, abs=1e-12, nan_ok=True), (name, key)
    blur = one["blur"]
    assert blur["psnr_mean"] == pytest.approx(float(psnr(blurred, clean).mean()), rel=1e-12)
    assert blur["psnr"] == pytest.approx(float(-10 * torch.log10(mse(blurred, clean).mean())), rel=1e-12)   # pooled
    assert blur["ssim"] == pytest.approx(float(ssim(blurred, clean).mean()), rel=1e-12)
    assert blur["mse"] == pytest.approx(float(mse(blurred, clean).mean()), rel=1e-12)
    assert blur["d_psnr_mean"] == pytest.approx(float((psnr(blurred, clean) - psnr(star, clean)).mean()), rel=1e-10)
    assert blur["d_psnr"] == pytest.approx(blur["psnr"] - one["x_star"]["psnr"], rel=1e-12)
    assert blur["d_psnr_lo"] < blur["d_psnr"] < blur["d_psnr_hi"]
    assert one["x_star"]["d_psnr"] == 0.0 and one["x_star"]["d_psnr_hi"] == 0.0
    assert blur["fid"] == pytest.approx(fid(features(blurred), features(clean)), rel=1e-8)
    assert blur["detail"] == pytest.approx(DetailFrechet(clean, levels=one_levels(clean))(blurred), rel=1e-6)
    assert blur["detail"] > 0.0 and blur["swd"] > 0.0


def one_levels(clean: torch.Tensor) -> int:
    return SlicedWasserstein(clean[:3]).levels


# ------------------------------------------------------------------ two processes

WORLD_SIZE = 2


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        clean = _images(8)
        signals = {"x_star": torch.nn.functional.avg_pool2d(clean, 3, 1, 1)}
        evaluator = StreamingEvaluator(clean[:3], features=CleanFeatures(_RandomFeatures(), name="random"),
                                       classifier=torch.randn(5, 16, generator=torch.Generator().manual_seed(2)),
                                       kid_capacity=64, kid_subsets=5, kid_subset_size=4, is_splits=2,
                                       swd_options={"patches_per_image": 32, "directions": 16, "grid": 32})
        for start in range(2 * rank, 8, 4):   # batches of 2 dealt out to the two processes
            part = slice(start, start + 2)
            evaluator.update(clean[part], {k: v[part] for k, v in signals.items()}, range(start, start + 2))
        evaluator.reduce()
        torch.save(evaluator.compute(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_reduce_to_the_single_process_values(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    clean = _images(8)
    single = _evaluate(2, clean, {"x_star": torch.nn.functional.avg_pool2d(clean, 3, 1, 1)},
                       CleanFeatures(_RandomFeatures(), name="random"),
                       torch.randn(5, 16, generator=torch.Generator().manual_seed(2)))["x_star"]
    for rank in range(WORLD_SIZE):
        reduced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)["x_star"]
        assert reduced["n_images"] == 8
        for key in ("psnr", "psnr_mean", "psnr_mean_sd", "ssim", "mse", "swd", "detail", "fid", "kid", "kid_sd", "is",
                    "is_sd"):
            assert reduced[key] == pytest.approx(single[key], rel=1e-6), key


def test_the_pooled_psnr_interval_matches_a_bootstrap_over_images() -> None:
    """The delta-method interval of a pooled-PSNR difference, from streamed sums, against a
    direct bootstrap of the same pooled difference over 2000 resampled image sets."""
    from dotlib.metrics.registry import pooled_metrics
    from dotlib.metrics.streaming_evaluator import _delta_method

    rng = np.random.default_rng(3)
    base = rng.lognormal(-6.0, 0.8, 400)                       # per-image MSE of x*
    signal = base * rng.lognormal(0.4, 0.3, 400)               # correlated, about 1.5x worse
    states = {}
    for name, values in (("x_star", base), ("x_hat", signal)):
        state = type("State", (), {})()
        state.per_image, state.difference = PerImageMeans(("mse",)), PerImageMeans(("mse",))
        state.per_image.update({"mse": torch.from_numpy(values)})
        state.pooled = PerImageMeans(("mse",))
        state.pooled.update({"mse": torch.from_numpy(values) * 3072.0}, weight=3072.0)   # 32² RGB images
        state.difference.update({"mse": torch.from_numpy(values - base)})
        states[name] = state
    value, sd = _delta_method(pooled_metrics()["psnr"], states["x_hat"], states["x_star"])
    assert value == pytest.approx(10 * np.log10(base.mean() / signal.mean()), rel=1e-12)
    draws = rng.integers(0, 400, (2000, 400))
    resampled = 10 * np.log10(base[draws].mean(axis=1) / signal[draws].mean(axis=1))
    assert sd / np.sqrt(400) == pytest.approx(resampled.std(ddof=1), rel=0.1)


def test_pooled_psnr_of_mixed_sizes_weights_pixels_and_its_difference_is_the_rows_difference() -> None:
    """A folder of two image sizes: the pooled PSNR is that of all pixels, and ``d_psnr`` is the
    difference of the two signals' own pooled values (not of per-image means)."""
    small, large = _images(3, 32, seed=4), _images(2, 64, seed=5)
    evaluator = StreamingEvaluator([small[0], large[0]], seed=0)
    errors = {"x_star": 0.02, "x_hat": 0.05}
    squared, pixels = {name: 0.0 for name in errors}, 0
    for start, clean in ((0, small), (3, large)):
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(start))
        signals = {name: (clean + scale * (1 + start) * noise).clamp(0, 1) for name, scale in errors.items()}
        evaluator.update(clean, signals, range(start, start + clean.shape[0]))
        for name, images in signals.items():
            squared[name] += float(((images.double() - clean.double()) ** 2).sum())
        pixels += clean.numel()
    rows = evaluator.compute()
    for name in errors:
        assert rows[name]["psnr"] == pytest.approx(-10 * np.log10(squared[name] / pixels), rel=1e-12)
    assert rows["x_hat"]["d_psnr"] == pytest.approx(rows["x_hat"]["psnr"] - rows["x_star"]["psnr"], rel=1e-12)
    assert rows["x_hat"]["d_psnr_lo"] < rows["x_hat"]["d_psnr"] < rows["x_hat"]["d_psnr_hi"] < 0


class _ValueReads(torch.overrides.TorchFunctionMode):
    """Counts the calls that read a tensor's values back to Python (on a GPU, each waits for the device)."""

    READS = {"item", "tolist", "__bool__", "__float__"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in self.READS
        return func(*args, **(kwargs or {}))


def test_an_update_reads_values_back_once_whatever_the_number_of_signals() -> None:
    """Every image's values are checked in one read; the metrics then stay on the device (SSIM's CPU path
    goes through numpy, not counted; a GPU takes conv2d). Before this, 10 signals cost 243 reads."""
    clean = _images(4)
    features = CleanFeatures(_RandomFeatures(), name="random")
    counts = {}
    for n_signals in (2, 12):
        signals = {"x_star": clean.flip(-1), **{f"s{i}": (clean * (0.9 - 0.05 * i)).clamp(0, 1)
                                                for i in range(n_signals - 1)}}
        evaluator = StreamingEvaluator(clean[:3], features=features, classifier=torch.randn(5, 16), kid_capacity=64,
                                       kid_subsets=5, kid_subset_size=4, is_splits=2)
        with _ValueReads() as reads:
            evaluator.update(clean, signals, range(4))
        counts[n_signals] = reads.count
    assert counts == {2: 1, 12: 1}
    bad = {"x_star": clean, "s0": clean * 2.0}
    with pytest.raises(ValueError, match="s0 must lie in"):   # still refused, by name
        StreamingEvaluator(clean[:3]).update(clean, bad, range(4))
