"""dotlib.gaussian against POT (a peer implementation) and against exact identities."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from dotlib.gaussian import (
    GaussianStats,
    degenerate_ot_map,
    frechet,
    gaussian_map,
    interpolate_operator,
    ot_map,
    root_factor,
    sqrtm_psd,
    w2,
)

DIMS = [2, 10, 100, 400]


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random SPD matrix with a spread of eigenvalues (Wishart plus a small floor)."""
    x = rng.standard_normal((dim, 2 * dim))
    return x @ x.T / (2 * dim) + 0.05 * np.eye(dim)


def random_low_rank(rng: np.random.Generator, dim: int, rank: int) -> np.ndarray:
    x = rng.standard_normal((dim, rank))
    return x @ x.T / rank


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("dim", DIMS)
def test_ot_map_matches_pot(dim: int) -> None:
    rng = np.random.default_rng(dim)
    cov_s, cov_t = random_spd(rng, dim), random_spd(rng, dim)
    mean_s, mean_t = rng.standard_normal(dim), rng.standard_normal(dim)
    expected, bias = ot.gaussian.bures_wasserstein_mapping(mean_s, mean_t, cov_s, cov_t)
    ours = ot_map(cov_s, cov_t, eps=0.0)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    assert relative(ours, expected) < 1e-8
    np.testing.assert_allclose(mean_t - ours @ mean_s, np.ravel(bias), rtol=1e-8, atol=1e-10)
    assert np.array_equal(ours, ours.T)
    assert np.linalg.eigvalsh(ours).min() > 0
    assert relative(ours @ cov_s @ ours, cov_t) < 1e-9


@pytest.mark.parametrize("dim", DIMS)
def test_w2_matches_pot(dim: int) -> None:
    rng = np.random.default_rng(100 + dim)
    cov_s, cov_t = random_spd(rng, dim), random_spd(rng, dim)
    mean_s, mean_t = rng.standard_normal(dim), rng.standard_normal(dim)
    pot = float(ot.gaussian.bures_wasserstein_distance(mean_s, mean_t, cov_s, cov_t))  # W2, not squared
    ours = w2(mean_s, cov_s, mean_t, cov_t)
    assert isinstance(ours, float)
    assert abs(ours - pot**2) / pot**2 < 1e-8


def test_w2_is_symmetric_and_exact_on_a_known_case() -> None:
    # Commuting covariances: W2^2 = |dm|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
    dm = np.array([1.0, -2.0, 0.5])
    expected = dm @ dm + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert w2(dm, np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected, rel=1e-14)
    assert w2(np.zeros(3), np.diag(b), dm, np.diag(a)) == pytest.approx(expected, rel=1e-14)
    singular = np.diag([1.0, 0.0, 0.0])
    assert w2(np.zeros(3), singular, np.zeros(3), singular) == pytest.approx(0.0, abs=1e-14)


def _gaussian_batch(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, ...]:
    """Means ``[8, dim]`` and covariances ``[8, dim, dim]`` of two sides; pairs 0-1 are positive definite,
    2-7 singular: source, target, both, the same matrix twice, commuting diagonals with zeros."""
    full = [random_spd(rng, dim) for _ in range(5)]
    low = [random_low_rank(rng, dim, dim // 3) for _ in range(4)]
    diag_a, diag_b = np.diag(np.r_[np.arange(dim - 2) + 1.0, 0.0, 0.0]), np.diag(np.r_[0.0, np.ones(dim - 1)])
    cov_a = np.stack([full[0], full[1], low[0], full[2], low[1], low[3], diag_a, low[3]])
    cov_b = np.stack([full[3], full[4], full[2], low[2], low[2], low[3], diag_b, np.zeros((dim, dim))])
    return rng.standard_normal((8, dim)), cov_a, rng.standard_normal((8, dim)), cov_b


def test_frechet_is_w2_batched_and_matches_pot() -> None:
    rng = np.random.default_rng(10)
    mean_a, cov_a, mean_b, cov_b = _gaussian_batch(rng, 12)
    batched = frechet(mean_a, cov_a, mean_b, cov_b)
    assert isinstance(batched, np.ndarray) and batched.shape == (8,) and batched.dtype == np.float64
    # the batch holds singular Σa, so it goes through root_factor(Σb); w2 of a positive definite Σa
    # goes through the Cholesky factor of Σa
    single = np.array([w2(*pair) for pair in zip(mean_a, cov_a, mean_b, cov_b)])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-12)
    # POT (no rank tolerance) on the positive definite pairs, both routes; the exact value on the commuting pair
    pot = ot.gaussian.bures_wasserstein_distance(mean_a[:2], mean_b[:2], cov_a[:2], cov_b[:2], paired=True)
    np.testing.assert_allclose(batched[:2], np.asarray(pot) ** 2, rtol=1e-8)
    np.testing.assert_allclose(frechet(mean_a[:2], cov_a[:2], mean_b[:2], cov_b[:2]), np.asarray(pot) ** 2, rtol=1e-8)
    diag = np.sqrt(np.diagonal(cov_a[6])) - np.sqrt(np.diagonal(cov_b[6]))
    assert batched[6] == pytest.approx(np.sum((mean_a[6] - mean_b[6]) ** 2) + diag @ diag, rel=1e-14)
    assert batched[5] == pytest.approx(np.sum((mean_a[5] - mean_b[5]) ** 2), rel=1e-12)
    assert batched[7] == pytest.approx(np.sum((mean_a[7] - mean_b[7]) ** 2) + np.trace(cov_a[7]), rel=1e-14)


def test_frechet_with_a_cached_reference_root() -> None:
    rng = np.random.default_rng(11)
    mean_a, cov_a, _, _ = _gaussian_batch(rng, 9)
    mean_b, cov_b = torch.from_numpy(rng.standard_normal(9)), torch.from_numpy(random_low_rank(rng, 9, 4))
    root = root_factor(cov_b)
    assert isinstance(root, torch.Tensor) and root.shape == (9, 4)
    torch.testing.assert_close(root @ root.T, cov_b, rtol=0, atol=1e-14)
    cached = frechet(torch.from_numpy(mean_a), torch.from_numpy(cov_a), mean_b, cov_b, root_b=root)
    assert isinstance(cached, torch.Tensor) and cached.shape == (8,)
    torch.testing.assert_close(cached, frechet(mean_a, cov_a, mean_b, cov_b), rtol=0, atol=0)
    for k in range(8):  # one reference broadcast against the batch
        assert cached[k].item() == pytest.approx(w2(mean_a[k], cov_a[k], mean_b, cov_b), rel=1e-12, abs=1e-12)


def test_root_factor() -> None:
    rng = np.random.default_rng(12)
    _, cov_a, _, _ = _gaussian_batch(rng, 10)
    roots = root_factor(cov_a)
    assert roots.shape == (8, 10, 10)  # the largest rank of the batch; lower ranks get zero columns
    np.testing.assert_allclose(roots @ roots.transpose(0, 2, 1), cov_a, rtol=0, atol=1e-13)
    assert np.count_nonzero(np.abs(roots[2]).sum(axis=0)) == 3
    vectors = roots[0] / np.linalg.norm(roots[0], axis=0)  # R = U Λ^1/2, so R U^T = Σ^1/2
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(10), rtol=0, atol=1e-14)
    np.testing.assert_allclose(roots[0] @ vectors.T, sqrtm_psd(cov_a[0]), rtol=0, atol=1e-13)
    assert root_factor(np.zeros((3, 3))).shape == (3, 1) and not root_factor(np.zeros((3, 3))).any()
    np.testing.assert_allclose(root_factor(cov_a[:2]), np.linalg.cholesky(cov_a[:2]), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="square matrices"):
        root_factor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"root_b must be a factor \[..., 10, r\]"):
        frechet(np.zeros(10), cov_a[0], np.zeros(10), cov_a[1], root_b=np.ones((9, 2)))
    with pytest.raises(ValueError, match="same dimension"):
        frechet(np.zeros(10), cov_a[0], np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"mean_b must hold vectors \[..., 10\]"):
        frechet(np.zeros(10), cov_a[0], np.zeros(3), cov_a[1])


def test_torch_inputs_give_torch_outputs() -> None:
    rng = np.random.default_rng(1)
    cov_s, cov_t = random_spd(rng, 6), random_spd(rng, 6)
    ours = ot_map(torch.from_numpy(cov_s).float(), torch.from_numpy(cov_t), eps=0.0)
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), ot_map(cov_s.astype(np.float32), cov_t, eps=0.0), rtol=1e-12)
    distance = w2(torch.zeros(6), torch.from_numpy(cov_s), np.zeros(6), cov_t)
    assert distance == pytest.approx(w2(np.zeros(6), cov_s, np.zeros(6), cov_t), rel=1e-12)
    a, noise = gaussian_map(torch.from_numpy(cov_s), torch.from_numpy(cov_t))
    assert isinstance(a, torch.Tensor) and noise is None


def test_ot_map_ridge_follows_the_authors_convention() -> None:
    # (S^1/2 T S^1/2 + eps I) = S^1/2 (T + eps S^-1) S^1/2, so the ridge equals a target change.
    rng = np.random.default_rng(2)
    cov_s, cov_t = random_spd(rng, 12), random_spd(rng, 12)
    eps = 1e-3
    shifted_target = cov_t + eps * np.linalg.inv(cov_s)
    assert relative(ot_map(cov_s, cov_t, eps=eps), ot_map(cov_s, shifted_target, eps=0.0)) < 1e-10
    # An inner matrix made indefinite by rounding loses its most negative eigenvalue before
    # the root; a covariance that is indefinite beyond rounding is refused.
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    values = np.array([-5e-8, 0.1, 0.5, 1.0, 2.0])  # within the tolerance 1e-8 · D · max|λ| = 1e-7
    indefinite = q @ np.diag(values) @ q.T
    indefinite = (indefinite + indefinite.T) / 2
    expected = q @ np.diag(np.sqrt(values + 5e-8 + eps)) @ q.T
    assert relative(ot_map(np.eye(5), indefinite, eps=eps), expected) < 1e-10
    values[0] = -0.2
    with pytest.raises(ValueError, match="cov_t is not positive semi-definite"):
        ot_map(np.eye(5), q @ np.diag(values) @ q.T, eps=eps)


@pytest.mark.parametrize("dim,rank", [(10, 3), (100, 40)])
def test_degenerate_map_pushes_source_onto_target(dim: int, rank: int) -> None:
    rng = np.random.default_rng(dim + rank)
    cov_s, cov_t = random_low_rank(rng, dim, rank), random_spd(rng, dim)
    a, noise = degenerate_ot_map(cov_s, cov_t)
    assert relative(a @ cov_s @ a.T + noise, cov_t) < 1e-10
    assert np.linalg.eigvalsh(noise).min() > -1e-12
    assert np.linalg.matrix_rank(noise, tol=1e-8) == dim - rank
    # Optimality: the cost of the coupling (s, A s + w) is W2^2.
    cost = np.trace(cov_s) + np.trace(cov_t) - 2 * np.trace(cov_s @ a.T)
    assert cost == pytest.approx(w2(np.zeros(dim), cov_s, np.zeros(dim), cov_t), rel=1e-10)
    chosen, chosen_noise = gaussian_map(cov_s, cov_t)
    np.testing.assert_array_equal(chosen, a)
    np.testing.assert_array_equal(chosen_noise, noise)


def test_degenerate_map_reduces_to_ot_map_for_invertible_source() -> None:
    rng = np.random.default_rng(3)
    cov_s, cov_t = random_spd(rng, 30), random_spd(rng, 30)
    a, noise = degenerate_ot_map(cov_s, cov_t, eps=0.0)
    assert relative(a, ot_map(cov_s, cov_t, eps=0.0)) < 1e-9
    assert np.abs(noise).max() < 1e-10


def test_degenerate_map_projects_an_indefinite_noise_onto_the_psd_cone() -> None:
    # Singular source AND singular target: the raw noise covariance is indefinite.
    rng = np.random.default_rng(4)
    cov_s, cov_t = random_low_rank(rng, 20, 5), random_low_rank(rng, 20, 8)
    a, noise = degenerate_ot_map(cov_s, cov_t)
    assert np.linalg.eigvalsh(noise).min() > -1e-12
    assert np.isfinite(a).all()


def test_matrix_roots() -> None:
    rng = np.random.default_rng(5)
    matrix = random_spd(rng, 40)
    root = sqrtm_psd(matrix)
    assert relative(root @ root, matrix) < 1e-12
    # A PSD matrix with rounding-level negative eigenvalues: clipped, no NaN.
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    nearly = q @ np.diag([-1e-17, 0.0, 1.0, 4.0]) @ q.T
    nearly = (nearly + nearly.T) / 2
    root = sqrtm_psd(nearly)
    assert np.isfinite(root).all() and relative(root @ root, nearly) < 1e-12
    ridge = sqrtm_psd(nearly, eps=0.25)
    assert relative(ridge @ ridge, nearly + 0.25 * np.eye(4)) < 1e-6


def test_interpolate_operator() -> None:
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(interpolate_operator(a, 0.0), a)
    np.testing.assert_array_equal(interpolate_operator(a, 1.0), np.eye(2))
    np.testing.assert_allclose(interpolate_operator(a, -1.0), 2 * a - np.eye(2))
    assert isinstance(interpolate_operator(torch.from_numpy(a), 0.3), torch.Tensor)


def test_input_errors() -> None:
    good = np.eye(3)
    with pytest.raises(ValueError, match="square"):
        ot_map(np.ones((3, 2)), good)
    with pytest.raises(ValueError, match="not symmetric"):
        ot_map(good + np.triu(np.ones((3, 3)), 1), good)
    with pytest.raises(ValueError, match="same dimension"):
        ot_map(good, np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        w2(np.zeros(3), np.full((3, 3), np.nan), np.zeros(3), good)
    with pytest.raises(ValueError, match=r"mean_t must be a vector \[3\]"):
        w2(np.zeros(3), good, np.zeros(4), good)
    with pytest.raises(ValueError, match="not positive definite"):
        ot_map(np.diag([1.0, 1.0, 0.0]), good)
    with pytest.raises(ValueError, match="eps"):
        ot_map(good, good, eps=-1.0)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        ot_map([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="square"):
        interpolate_operator(np.ones(3), 0.5)


# ------------------------------------------------------------------ GaussianStats


def test_stats_single_pass_matches_numpy() -> None:
    rng = np.random.default_rng(6)
    samples = rng.standard_normal((500, 7)) @ rng.standard_normal((7, 7)) + 3.0
    stats = GaussianStats(7).update(torch.from_numpy(samples).float())
    single = samples.astype(np.float32).astype(np.float64)
    assert stats.count == 500
    np.testing.assert_allclose(stats.mean.numpy(), single.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(single, rowvar=False, ddof=1), rtol=1e-11, atol=1e-13)
    assert stats.cov.dtype == torch.float64


def test_stats_merge_equals_single_pass() -> None:
    rng = np.random.default_rng(7)
    samples = torch.from_numpy(rng.standard_normal((1000, 5)) * [1, 2, 3, 4, 5] + 10.0)
    single = GaussianStats(5).update(samples)
    parts = [GaussianStats(5).update(samples[:1]), GaussianStats(5).update(samples[1:301]),
             GaussianStats(5), GaussianStats(5).update(samples[301:])]
    merged = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    streamed = GaussianStats(5)
    for start in range(0, 1000, 128):
        streamed.update(samples[start:start + 128])
    for other in (merged, streamed):
        assert other.count == 1000
        np.testing.assert_allclose(other.mean.numpy(), single.mean.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.cov.numpy(), single.cov.numpy(), rtol=1e-10, atol=1e-12)


def test_stats_are_numerically_sound_far_from_the_origin() -> None:
    # Raw second moments lose all digits here (offset^2 / variance = 1e16).
    rng = np.random.default_rng(8)
    centred = rng.standard_normal((2000, 3))
    stats = GaussianStats(3)
    for chunk in np.array_split(centred + 1e8, 7):
        stats.update(chunk)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(centred, rowvar=False), rtol=1e-6, atol=1e-6)


def test_stats_state_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(9)
    stats = GaussianStats(4).update(rng.standard_normal((50, 4)))
    path = tmp_path / "stats.pt"
    torch.save(stats.state_dict(), path)
    restored = GaussianStats.from_state_dict(torch.load(path, weights_only=True))
    assert restored.count == 50 and restored.dim == 4
    np.testing.assert_allclose(restored.mean.numpy(), stats.mean.numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(restored.cov.numpy(), stats.cov.numpy(), rtol=0, atol=0)
    more = rng.standard_normal((30, 4))
    restored.update(more)
    stats.update(more)
    np.testing.assert_allclose(restored.cov.numpy(), stats.cov.numpy(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        GaussianStats.from_state_dict({"mean": torch.zeros(4)})


def test_stats_input_errors() -> None:
    stats = GaussianStats(3)
    with pytest.raises(ValueError, match="no samples"):
        _ = stats.mean
    stats.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least two samples"):
        _ = stats.cov
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        stats.update(np.ones((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.full((5, 3), np.nan))
    for bad in (np.nan, np.inf, -np.inf):  # one bad entry among finite samples
        samples = np.zeros((6, 3))
        samples[4, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            stats.update(samples)
    assert stats.count == 1  # rejected batches leave the statistics unchanged
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(GaussianStats(2))
    with pytest.raises(ValueError, match="positive integer"):
        GaussianStats(0)
    with pytest.raises(RuntimeError, match="not initialised"):
        stats.all_reduce()


# ------------------------------------------------------- covariances must be PSD


def test_indefinite_covariances_are_refused_everywhere() -> None:
    eye, zero = np.eye(3), np.zeros(3)
    negative = -eye
    calls = {
        "w2": lambda: w2(zero, negative, zero, eye),  # was 0.0: a silent wrong result
        "ot_map": lambda: ot_map(eye, negative),
        "degenerate_ot_map": lambda: degenerate_ot_map(negative, eye),
        "gaussian_map": lambda: gaussian_map(negative, eye),
        "sqrtm_psd": lambda: sqrtm_psd(negative),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"not positive semi-definite.*smallest eigenvalue is -1\.0"):
            call()
    # one clearly negative direction in an otherwise healthy matrix is caught too
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    almost = q @ np.diag([-1e-3, 1.0, 1.0, 2.0, 3.0, 4.0]) @ q.T
    with pytest.raises(ValueError, match="cov_t is not positive semi-definite"):
        w2(np.zeros(6), np.eye(6), np.zeros(6), torch.from_numpy(almost))


def test_singular_and_rounded_covariances_from_data_are_accepted() -> None:
    rng = np.random.default_rng(5)
    # rank-deficient sample covariances (fewer samples than dimensions), computed both ways
    samples = rng.standard_normal((20, 64)) * np.logspace(0, -6, 64)
    stats = GaussianStats(64).update(samples)
    low_rank = stats.cov
    assert torch.linalg.eigvalsh(low_rank).min() < 0  # rounding leaves tiny negative eigenvalues
    full = GaussianStats(64).update(rng.standard_normal((500, 64)))
    assert w2(stats.mean, low_rank, full.mean, full.cov) > 0
    a, noise = gaussian_map(low_rank, full.cov)
    assert noise is not None and torch.isfinite(a).all()
    assert torch.isfinite(sqrtm_psd(low_rank)).all()
    # an exactly singular matrix with rounding noise of order 1e-16 · max|λ|
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    singular = q @ np.diag([0.0, 0.0, 1e-12, 0.5, 1.0, 2.0, 3.0, 4.0]) @ q.T
    assert w2(np.zeros(8), singular, np.zeros(8), singular) == pytest.approx(0.0, abs=1e-9)
