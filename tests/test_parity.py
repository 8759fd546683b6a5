"""Parity with the authors' code: LatentOT with their conventions reproduces their x̂0.

Where the numbers come from. ``tests/data/fixture_pixel_p5.npz`` and
``tests/data/fixture_pixel_p5_eps1e-5.npz`` are byte copies of two files written during
issue #11's parity study. There the authors' ``LatentW2`` class (``dmax/latent_w2.py`` of
``github:theoad/dot-dmax`` at commit ``2ea7ce777f0a96c2deadddbdb5c50145350aa0b3``, also
stored in each file as ``commit``) was run by hand on CPU, in pixel space
(``vae=None``), with ``block_size=5``, uniform folding and ``eps`` = 1e-7 (their
published setting) or 1e-5 (their class default): ``update(natural, "target")``,
``update(restored, "source")``, ``compute()``, then ``transport(test)``. The inputs are
small synthetic images in [0, 1] from a seeded generator (6 "natural" 40×48 images with
smooth colour fields, the same images blurred with a colour shift as "restored", and 3
new images restored the same way as ``test``, 36×44). Each file holds those inputs and
what their code produced: the fitted means and covariances (float64), their operator,
and their unclipped x̂0 (float32). Only numbers are stored here, none of their code; the
study's specification of their code is issue #11's SPEC (sections 1–5: [-1, 1] scaling
in pixel space too, valid patches for fitting, replicate padding for transport, absolute
ridge, no clipping of x̂0).

dotlib matches them with ``border="replicate"``, ``ridge="absolute"`` and the same
``eps`` (plus ``clip_x_hat0=False`` for the raw x̂0). The remaining gap is float32
rounding: dotlib moves patches in the latent's float32, their code in float64 (measured:
max 1.2e-7, PSNR 154 dB at ε = 1e-7; max 5.7e-7, 144 dB at ε = 1e-5). The issue's
criterion is 50 dB.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dotlib.latent_ot import LatentOT

DATA = Path(__file__).parent / "data"
FIXTURES = {1e-7: "fixture_pixel_p5.npz", 1e-5: "fixture_pixel_p5_eps1e-5.npz"}
AUTHORS_COMMIT = "2ea7ce777f0a96c2deadddbdb5c50145350aa0b3"
PATCH = 5


def load_fixture(eps: float) -> dict:
    with np.load(DATA / FIXTURES[eps]) as data:
        fixture = {key: data[key] for key in data.files}
    assert str(fixture["commit"]) == AUTHORS_COMMIT and float(fixture["eps"]) == eps
    assert int(fixture["block_size"]) == PATCH and not bool(fixture["degenerate"])
    return fixture


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def raw_x_hat0(model: LatentOT, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """D(T(z)) as LatentOT.apply decodes it before the α mix (unclipped with ``clip_x_hat0=False``)."""
    return model._decoded(latents, 0.0, size, model._generator(), None)


def relative(a: torch.Tensor, b: np.ndarray) -> float:
    b = torch.from_numpy(b)
    return float((a.cpu().double() - b).norm() / b.norm())


def fitted(fixture: dict, **options) -> LatentOT:
    model = LatentOT(encoder="pixel", patch_size=PATCH, eps=float(fixture["eps"]), ridge="absolute", **options)
    model.update(torch.from_numpy(fixture["natural"]), "target")
    model.update(torch.from_numpy(fixture["restored"]), "source")
    model.fit()
    return model


@pytest.fixture(scope="module", params=sorted(FIXTURES), ids=lambda eps: f"eps{eps:g}")
def case(request):
    fixture = load_fixture(request.param)
    return fixture, fitted(fixture, border="replicate")


def test_statistics_and_operator_match_the_authors(case):
    """Pixel latents in [-1, 1], valid patches, unbiased float64 covariances: same Gaussians."""
    fixture, model = case
    assert model.source.count == int(fixture["n_source"]) and model.target.count == int(fixture["n_target"])
    for stats, which in ((model.source, "source"), (model.target, "target")):
        assert relative(stats.mean, fixture[f"mean_{which}"]) < 1e-10
        assert relative(stats.cov, fixture[f"cov_{which}"]) < 1e-10
    # the operator goes through two eigendecompositions of ill-conditioned matrices (Cholesky
    # route here, eigh there): equal to ~5e-10 relative, not to rounding
    assert model.operator.noise_root is None
    assert relative(model.operator.matrix, fixture["transport_operator"]) < 1e-8


def test_x_hat0_matches_the_authors(case):
    """transport(alpha=0) (clipped by the α mix) against their x̂0 clipped to [0, 1]: PSNR >= 50 dB."""
    fixture, model = case
    x_star = torch.from_numpy(fixture["test"])
    theirs = torch.from_numpy(fixture["x_hat0"]).clamp(0, 1)
    ours = model.transport(x_star, alpha=0.0)
    assert ours.shape == theirs.shape
    value = psnr(ours, theirs)
    print(f"eps={float(fixture['eps']):g}: PSNR {value:.1f} dB, max {float((ours - theirs).abs().max()):.2g}")
    assert value >= 50.0
    # in fact float32 rounding only (dotlib moves patches in float32, their code in float64)
    assert float((ours - theirs).abs().max()) < 1e-6


def test_unclipped_x_hat0_and_the_clipped_mix_match_the_authors(case):
    """clip_x_hat0=False gives their raw x̂0 (outside [0, 1] at ε = 1e-5); their α mix is
    ``(x̂0 (1 - α) + x* α).clip(0, 1)``, which LatentOT.sweep computes from that raw x̂0."""
    fixture, _ = case
    model = LatentOT.authors("pixel", patch_size=PATCH, eps=float(fixture["eps"]))
    assert (model.border, model.ridge, model.clip_x_hat0, model.latent) == ("replicate", "absolute", False, "mean")
    model.update(torch.from_numpy(fixture["natural"]), "target")
    model.update(torch.from_numpy(fixture["restored"]), "source")
    model.fit()
    x_star = torch.from_numpy(fixture["test"])
    raw = torch.from_numpy(fixture["x_hat0"])
    ours = raw_x_hat0(model, model.encoder.encode(x_star), tuple(x_star.shape[-2:]))
    assert float((ours - raw).abs().max()) < 1e-6
    assert float(ours.min()) == pytest.approx(float(raw.min()), abs=1e-6)
    assert float(ours.max()) == pytest.approx(float(raw.max()), abs=1e-6)
    alphas = [-1.0, 0.0, 0.3, 1.0, 2.0]
    sweep = model.sweep(x_star, alphas)
    for index, alpha in enumerate(alphas):
        expected = (raw * (1 - alpha) + x_star * alpha).clip(0, 1)
        assert float((sweep[index] - expected).abs().max()) < 2e-6, alpha


def test_valid_border_differs_from_the_authors_only_near_the_border(case):
    """border="valid" (dotlib's default) moves only the valid patches; the authors pad.

    A padded patch centred within p//2 of the edge covers positions up to 2·(p//2) - 1
    from it, so only the outer 2·(p//2)·factor pixels (4 here, factor 1) can differ; a band
    of p//2 is not enough (the ring between p//2 and 2·(p//2) differs too).
    """
    fixture, replicate = case
    model = fitted(fixture)  # border="valid"
    assert model.border == "valid"
    x_star = torch.from_numpy(fixture["test"])
    ours, theirs = model.transport(x_star), torch.from_numpy(fixture["x_hat0"]).clamp(0, 1)
    band = 2 * (PATCH // 2) * model.encoder.factor
    inner = (..., slice(band, -band), slice(band, -band))
    assert psnr(ours[inner], theirs[inner]) > 120
    assert float((ours[inner] - theirs[inner]).abs().max()) < 1e-6
    ring = (..., slice(band // 2, -band // 2), slice(band // 2, -band // 2))
    assert float((ours[ring] - theirs[ring]).abs().max()) > 1e-3  # the border does differ
    # the interior is the same arithmetic in both of dotlib's modes: identical
    assert torch.equal(ours[inner], replicate.transport(x_star)[inner])
    print(f"eps={float(fixture['eps']):g}: border='valid' vs the authors: PSNR {psnr(ours, theirs):.1f} dB whole, "
          f"{psnr(ours[inner], theirs[inner]):.1f} dB without the outer {band} px")


# ------------------------------------------------------- the conventions as options


def tiny_kl_folder(folder: Path) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                  norm_num_groups=4).save_pretrained(folder)
    return folder


def test_options_are_checked_and_defaults_unchanged(tmp_path):
    model = LatentOT("pixel", patch_size=3)
    assert (model.border, model.ridge, model.clip_x_hat0, model.latent) == ("valid", "relative", True, "mean")
    with pytest.raises(ValueError, match="border"):
        LatentOT("pixel", patch_size=3, border="reflect")
    with pytest.raises(ValueError, match="latent"):
        LatentOT("pixel", patch_size=3, latent="mode")
    with pytest.raises(ValueError, match="sample=True is not available"):
        LatentOT("pixel", patch_size=3, latent="sample")  # pixel space has no posterior
    authors = LatentOT.authors("pixel")
    assert (authors.patch_size, authors.eps, authors.ridge, authors.border, authors.clip_x_hat0) == \
        (5, 1e-7, "absolute", "replicate", False)
    assert LatentOT.authors("pixel", eps=1e-5, border="valid").border == "valid"  # options override


def test_latent_sample_draws_from_the_vae_posterior(tmp_path):
    folder = tiny_kl_folder(tmp_path / "vae")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    mean = LatentOT(folder, patch_size=3)
    assert mean.latent == "mean" and not mean.encoder.sample
    sampled = LatentOT(folder, patch_size=3, latent="sample", seed=3)
    assert sampled.latent == "sample" and sampled.encoder.sample
    assert LatentOT.authors(folder, patch_size=3).latent == "sample"
    first, second = sampled.encoder.encode(x), sampled.encoder.encode(x)
    assert not torch.equal(first, second)  # a fresh draw per call
    assert torch.equal(first, LatentOT(folder, patch_size=3, latent="sample", seed=3).encoder.encode(x))
    assert not torch.allclose(first, mean.encoder.encode(x), atol=1e-4)
    # an Encoder object keeps its own setting; a contradicting `latent` is refused
    assert LatentOT(mean.encoder, patch_size=3).latent == "mean"
    with pytest.raises(ValueError, match="disagrees"):
        LatentOT(mean.encoder, patch_size=3, latent="sample")
    with pytest.raises(ValueError, match="disagrees"):
        LatentOT(sampled.encoder, patch_size=3, latent="mean")
    # save/load rebuilds a sampling encoder
    sampled.update(x, "source").update(x ** 2, "target").fit()
    loaded = LatentOT.load(sampled.save(tmp_path / "op.safetensors"))
    assert loaded.latent == "sample" and loaded.encoder.sample


def test_save_load_keeps_the_conventions_and_old_files_load_as_before(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    fixture = load_fixture(1e-7)
    model = LatentOT.authors("pixel", eps=1e-7)
    model.update(torch.from_numpy(fixture["natural"]), "target")
    model.update(torch.from_numpy(fixture["restored"]), "source")
    model.fit()
    path = model.save(tmp_path / "authors.safetensors")
    loaded = LatentOT.load(path)
    assert (loaded.border, loaded.ridge, loaded.eps, loaded.clip_x_hat0) == ("replicate", "absolute", 1e-7, False)
    x_star = torch.from_numpy(fixture["test"])
    latents = model.encoder.encode(x_star)
    assert torch.equal(raw_x_hat0(loaded, latents, (36, 44)), raw_x_hat0(model, latents, (36, 44)))

    def rewrite(**changes):
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["dotlib"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        for key, value in changes.items():
            if value is None:
                meta.pop(key)
            else:
                meta[key] = value
        out = tmp_path / "old.safetensors"
        save_file(tensors, str(out), metadata={"dotlib": json.dumps(meta)})
        return out

    old = LatentOT.load(rewrite(border=None, clip_x_hat0=None, latent=None))
    assert (old.border, old.clip_x_hat0, old.latent) == ("valid", True, "mean")
    # pixel operators saved when pixel latents were [0, 1] (fingerprint "identity") are refused
    with pytest.raises(ValueError, match="other weights"):
        LatentOT.load(rewrite(encoder_fingerprint="identity"))


def test_clip_x_hat0_moves_the_clipping_after_the_mix():
    """With clip_x_hat0=False, x̂α = clip((1-α) x̂0 + α x*) (the authors); with the default,
    x̂0 is clipped first: the two differ where x̂0 leaves [0, 1] (ε = 1e-5 fixture)."""
    fixture = load_fixture(1e-5)
    clipped, raw = fitted(fixture, border="replicate"), fitted(fixture, border="replicate", clip_x_hat0=False)
    x_star = torch.from_numpy(fixture["test"])
    latents = clipped.encoder.encode(x_star)
    unclipped = raw_x_hat0(raw, latents, (36, 44))
    assert unclipped.min() < 0 and unclipped.max() > 1
    assert torch.equal(raw_x_hat0(clipped, latents, (36, 44)), unclipped.clamp(0, 1))
    assert torch.equal(clipped.transport(x_star), raw.transport(x_star))  # α = 0: both clipped once
    for alpha in (0.3, 0.7):  # (for α < 0 the mix mostly leaves [0, 1] wherever x̂0 does: both clip alike)
        expected = ((1 - alpha) * unclipped + alpha * x_star).clamp(0, 1)
        assert torch.allclose(raw.transport(x_star, alpha=alpha), expected, atol=1e-6)
        assert not torch.allclose(clipped.transport(x_star, alpha=alpha), expected, atol=1e-3)
