"""The toy Gaussian study against the theory of Freirich et al. (2021) and Adrai et al. (2023)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dotlib.paths import project_root
from dotlib.toy import GaussianToy, LinearEstimator, fit_dmax, oracle_dmax, run_toy

N_TEST = 20000
SIGMAS = 5.0  # Monte-Carlo tolerance, in standard errors
SIZES = (4, 16, 64, 256, 1024, 16384)


@pytest.fixture(scope="module", params=["denoise", "subsample"])
def result(request):
    return run_toy(dimension=16, task=request.param, noise_std=0.2, n_test=N_TEST, fewshot_sizes=SIZES, seed=3)


def test_closed_forms_reproduce_the_theory() -> None:
    for task in ("denoise", "subsample"):
        toy = GaussianToy.build(16, task, noise_std=0.2)
        d_star, w2_star = toy.d_star, toy.w2_star
        assert d_star > 0 and w2_star > 0
        eye = torch.eye(16, dtype=torch.float64)
        mmse = LinearEstimator(torch.zeros(16, dtype=torch.float64), eye)
        posterior = LinearEstimator(torch.zeros(16, dtype=torch.float64), eye, toy.cov_posterior)
        dmax = oracle_dmax(toy)
        assert mmse.theory(toy) == pytest.approx((d_star, w2_star), rel=1e-12)
        assert posterior.theory(toy)[0] == pytest.approx(2 * d_star, rel=1e-12)
        assert posterior.theory(toy)[1] < 1e-6 * w2_star
        mse, distance = dmax.theory(toy)
        assert mse == pytest.approx(d_star + w2_star**2, rel=1e-10)
        assert distance < 1e-6 * w2_star
        for alpha in np.linspace(0.0, 1.0, 11):
            assert dmax.mix(alpha).theory(toy) == pytest.approx(toy.theory_alpha(alpha), rel=1e-8, abs=1e-7)
    assert oracle_dmax(GaussianToy.build(16, "subsample", 0.2)).noise_cov is not None  # rank-deficient Σ*
    assert oracle_dmax(GaussianToy.build(16, "denoise", 0.2)).noise_cov is None


def test_estimators_match_theory_within_monte_carlo_error(result) -> None:
    table = result.estimators.set_index("estimator")
    assert list(table.index) == ["mmse", "posterior", "dmax_oracle", "dmax_fewshot"]
    expected = {"mmse": result.d_star, "posterior": 2 * result.d_star,
                "dmax_oracle": result.d_star + result.w2_star**2}
    for name, mse in expected.items():
        row = table.loc[name]
        assert row["mse_theory"] == pytest.approx(mse, rel=1e-9)  # tables hold 10 digits
        assert abs(row["mse"] - mse) < SIGMAS * row["mse_se"], name
    # W2 of the outputs: the oracle and the posterior sampler have perfect perception.
    assert table.loc["dmax_oracle", "w2_theory"] < 1e-6 * result.w2_star
    assert table.loc["dmax_oracle", "w2"] < 0.1 * result.w2_star
    assert table.loc["posterior", "w2"] < 0.1 * result.w2_star
    assert table.loc["mmse", "w2"] == pytest.approx(result.w2_star, rel=0.05)
    assert (table["w2"] - table["w2_theory"]).abs().max() < 0.1 * result.w2_star


def test_alpha_sweep_follows_the_tradeoff_curve(result) -> None:
    curve = result.pd_curve
    assert curve["alpha"].min() == pytest.approx(-1.0) and curve["alpha"].max() == pytest.approx(2.0)
    assert len(curve) == 31
    inside = curve[(curve["alpha"] > -1e-9) & (curve["alpha"] < 1 + 1e-9)]
    assert len(inside) == 11
    theory_mse = result.d_star + (1 - inside["alpha"]) ** 2 * result.w2_star**2
    np.testing.assert_allclose(inside["mse_theory"], theory_mse, rtol=1e-8)
    np.testing.assert_allclose(inside["w2_theory"], inside["alpha"] * result.w2_star, rtol=1e-8, atol=1e-6)
    assert ((inside["mse"] - theory_mse).abs() < SIGMAS * inside["mse_se"]).all()
    assert (inside["w2"] - inside["alpha"] * result.w2_star).abs().max() < 0.1 * result.w2_star
    # Beyond [0, 1] the sweep leaves the bound D(P) = D* + (W2* - P)^2 (P <= W2*).
    outside = curve[(curve["alpha"] < -0.05) & (curve["w2_theory"] <= result.w2_star)]
    bound = result.d_star + (result.w2_star - outside["w2_theory"]) ** 2
    assert (outside["mse_theory"] > bound + 1e-6).all()


def test_fewshot_approaches_the_oracle(result) -> None:
    fewshot = result.fewshot
    assert list(fewshot["n_samples"]) == list(SIZES)
    # Measured values agree with the closed form of each fitted map.
    assert ((fewshot["mse"] - fewshot["mse_theory"]).abs() < SIGMAS * fewshot["mse_se"]).all()
    oracle = result.estimators.set_index("estimator").loc["dmax_oracle", "mse_theory"]
    largest, smallest = fewshot.iloc[-1], fewshot.iloc[0]
    assert abs(largest["mse_theory"] - oracle) < 0.01 * oracle
    assert largest["w2_theory"] < 0.1 * result.w2_star < smallest["w2_theory"]
    many = fewshot[fewshot["n_samples"] >= 64]["w2_theory"].to_numpy()
    assert (np.diff(many) < 0).all()
    fewshot_row = result.estimators.set_index("estimator").loc["dmax_fewshot"]
    assert fewshot_row["mse"] == largest["mse"]


def test_fit_uses_unpaired_samples_and_recovers_the_oracle_map() -> None:
    toy = GaussianToy.build(16, "denoise", noise_std=0.2)
    generator = torch.Generator().manual_seed(0)
    x = toy.sample(200000, generator)[0]
    x_star = toy.mmse(toy.sample(200000, generator)[1])
    fitted, oracle = fit_dmax(x, x_star), oracle_dmax(toy)
    assert (fitted.gain - oracle.gain).abs().max() < 0.05 * oracle.gain.abs().max()


def test_reruns_are_identical() -> None:
    first = run_toy(dimension=16, task="subsample", n_test=500, fewshot_sizes=(8, 32), seed=1)
    second = run_toy(dimension=16, task="subsample", n_test=500, fewshot_sizes=(8, 32), seed=1)
    for a, b in zip((first.estimators, first.pd_curve, first.fewshot),
                    (second.estimators, second.pd_curve, second.fewshot)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    other = run_toy(dimension=16, task="subsample", n_test=500, fewshot_sizes=(8, 32), seed=2)
    assert not other.estimators.equals(first.estimators)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="square of an integer"):
        GaussianToy.build(15, "denoise", 0.1)
    with pytest.raises(ValueError, match="unknown task 'blur'; choose one of denoise, subsample"):
        GaussianToy.build(16, "blur", 0.1)
    with pytest.raises(ValueError, match="even patch side"):
        GaussianToy.build(9, "subsample", 0.1)
    with pytest.raises(ValueError, match="noise_std"):
        GaussianToy.build(16, "denoise", 0.0)
    with pytest.raises(ValueError, match="fewshot_sizes"):
        run_toy(dimension=16, fewshot_sizes=(1, 10), n_test=10)


def test_notebook_runs_with_papermill(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    notebook = project_root(Path(__file__).parent) / "notebooks" / "01_toy_gaussian.ipynb"
    parameters = {"dimension": 16, "task": "subsample", "noise_std": 0.2, "n_test": 2000,
                  "fewshot_sizes": [8, 64, 512], "seed": 0,
                  "results_dir": str(tmp_path / "toy"), "figures_dir": str(tmp_path / "figures")}
    papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters=parameters,
                               kernel_name="python3", progress_bar=False)
    estimators = pd.read_csv(tmp_path / "toy" / "estimators.csv")
    assert list(estimators["estimator"]) == ["mmse", "posterior", "dmax_oracle", "dmax_fewshot"]
    assert {"mse", "w2", "mse_theory", "w2_theory"} <= set(estimators.columns)
    curve = pd.read_csv(tmp_path / "toy" / "pd_curve.csv")
    assert {"alpha", "mse", "w2", "mse_theory", "w2_theory"} <= set(curve.columns) and len(curve) == 31
    fewshot = pd.read_csv(tmp_path / "toy" / "fewshot.csv")
    assert list(fewshot["n_samples"]) == [8, 64, 512]
    for stem in ("toy_subsample_pd_plane", "toy_subsample_fewshot"):
        for suffix in (".pdf", ".png"):
            assert (tmp_path / "figures" / f"{stem}{suffix}").stat().st_size > 10000
