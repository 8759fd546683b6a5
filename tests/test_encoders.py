"""Encoders (dotlib.encoders): identity, diffusers folders, Hugging Face ids, the embedded VAE."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny

from dotlib.encoders import EMBEDDED_VAE_DIR, load_encoder


def tiny_kl(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
        norm_num_groups=4, mid_block_add_attention=False, sample_size=32,
    ).eval()


@pytest.fixture(scope="module")
def kl_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_kl")
    tiny_kl().save_pretrained(folder)
    return folder


def images(batch=2, height=37, width=53, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_pixel_encoder_works_in_minus_one_one():
    """Pixel latents are the images scaled to [-1, 1], as the VAEs see them and as the
    authors' code does without a VAE (issue #11; they were the [0, 1] images before)."""
    encoder = load_encoder("pixel")
    x = torch.cat([images(), torch.tensor([0.0, 0.25, 1.0]).reshape(1, 3, 1, 1).expand(1, 3, 37, 53)])
    z = encoder.encode(x)
    assert (encoder.factor, encoder.latent_channels, encoder.name) == (1, 3, "pixel")
    assert torch.equal(z, 2 * x - 1) and z.min() == -1 and z.max() == 1
    # the same float32 numbers as the authors' Normalize(mean=0.5, std=0.5)
    assert torch.equal(z, (x - 0.5) / 0.5)
    assert torch.equal(encoder.decode(z), (z + 1) / 2)
    # the round trip rounds 2x - 1 near -1 only: exact for x >= 0.25, within 2^-26 below
    back = encoder.round_trip(x)
    assert torch.equal(back[x >= 0.25], x[x >= 0.25]) and (back - x).abs().max() <= 2 ** -26
    # decoding clamps transported values back into [0, 1], unless clamp=False
    moved = z * 3 - 1
    assert torch.equal(encoder.decode(moved), ((moved + 1) / 2).clamp(0, 1))
    assert torch.equal(encoder.decode(moved, clamp=False), (moved + 1) / 2)
    assert encoder.decode(moved, clamp=False).min() < 0
    with pytest.raises(ValueError, match="identity"):
        load_encoder("pixel", sample=True)


def test_folder_loads_through_diffusers_and_matches_it(kl_folder):
    encoder = load_encoder(kl_folder)
    assert encoder.name == str(kl_folder.resolve())
    assert (encoder.factor, encoder.latent_channels) == (2, 4)
    x = images()
    z = encoder.encode(x)
    assert z.shape == (2, 4, 19, 27) and z.dtype == torch.float32
    y = encoder.decode(z, size=(37, 53))
    assert y.shape == (2, 3, 37, 53) and 0 <= y.min() and y.max() <= 1
    # peer: the diffusers model used by hand (replicate pad, [-1, 1], posterior mean, crop)
    vae = AutoencoderKL.from_pretrained(kl_folder).eval()
    with torch.no_grad():
        padded = F.pad(x, (0, 1, 0, 1), mode="replicate") * 2 - 1
        mean = vae.encode(padded).latent_dist.mean
        raw = ((vae.decode(mean).sample + 1) / 2)[:, :, :37, :53]
        decoded = raw.clamp(0, 1)
    assert torch.allclose(z, mean, atol=1e-5)
    assert torch.allclose(y, decoded, atol=1e-5)
    assert torch.allclose(encoder.decode(z, size=(37, 53), clamp=False), raw, atol=1e-5)
    assert torch.equal(encoder.round_trip(x), y)
    with pytest.raises(ValueError, match="does not match"):
        encoder.decode(z, size=(40, 53))


def test_pipeline_folder_with_vae_subfolder(tmp_path, kl_folder):
    tiny_kl().save_pretrained(tmp_path / "vae")
    (tmp_path / "model_index.json").write_text("{}")
    encoder = load_encoder(tmp_path)
    reference = load_encoder(kl_folder)
    x = images(1, 16, 16)
    assert torch.equal(encoder.encode(x), reference.encode(x))


def test_sampling_is_seeded(kl_folder):
    x = images(1, 16, 20)
    first = load_encoder(kl_folder, sample=True, seed=3)
    second = load_encoder(kl_folder, sample=True, seed=3)
    mean = load_encoder(kl_folder).encode(x)
    a, b = first.encode(x), second.encode(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, mean)
    assert not torch.equal(first.encode(x), a)  # the generator advances between calls
    # the spread around the mean is the posterior's: std = exp(logvar / 2)
    vae = AutoencoderKL.from_pretrained(kl_folder)
    with torch.no_grad():
        std = vae.encode(x * 2 - 1).latent_dist.std
    standardized = (a - mean) / std
    assert 0.7 < float(standardized.std()) < 1.3


def test_autoencoder_tiny_folder(tmp_path):
    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                    num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1),
                    latent_channels=4).save_pretrained(tmp_path)
    encoder = load_encoder(tmp_path)
    assert (encoder.factor, encoder.latent_channels) == (4, 4)
    x = images(1, 30, 21)
    z = encoder.encode(x)
    assert z.shape == (1, 4, 8, 6)
    assert encoder.decode(z, size=(30, 21)).shape == (1, 3, 30, 21)
    with pytest.raises(ValueError, match="deterministic"):
        load_encoder(tmp_path, sample=True)


def test_tiling_is_used_for_large_images(kl_folder):
    x = images(1, 46, 40)
    plain = load_encoder(kl_folder)
    tiled = load_encoder(kl_folder, tile_size=32)
    assert tiled.vae.use_tiling
    z_tiled, z_plain = tiled.encode(x), plain.encode(x)
    assert z_tiled.shape == z_plain.shape == (1, 4, 23, 20)
    assert not torch.allclose(z_tiled, z_plain)  # tiles see only part of the image
    assert tiled.decode(z_tiled, size=(46, 40)).shape == (1, 3, 46, 40)
    with pytest.raises(ValueError, match="multiple of the factor"):
        load_encoder(kl_folder, tile_size=33)


@pytest.mark.cuda
def test_bfloat16_runs_and_float16_needs_cuda(kl_folder):
    x = images(1, 16, 16)
    z16 = load_encoder(kl_folder, dtype=torch.bfloat16).encode(x)
    z32 = load_encoder(kl_folder).encode(x)
    assert z16.dtype == torch.float32
    assert (z16 - z32).abs().max() < 0.05 * z32.abs().max()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            load_encoder(kl_folder, dtype=torch.float16)


def test_hub_id_offline_gives_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as error:
        load_encoder("stabilityai/sd-vae-ft-ema")
    message = str(error.value)
    assert "stabilityai/sd-vae-ft-ema" in message
    assert str(tmp_path / "hub") in message
    assert "embedded" in message
    with pytest.raises(FileNotFoundError, match="no VAE folder"):
        load_encoder(str(tmp_path / "not" / "there"))


def test_fingerprint_identifies_the_weights(tmp_path, kl_folder):
    tiny_kl(seed=0).save_pretrained(tmp_path / "same")
    tiny_kl(seed=1).save_pretrained(tmp_path / "other")
    fingerprint = load_encoder(kl_folder).fingerprint
    assert len(fingerprint) == 16
    assert load_encoder(tmp_path / "same").fingerprint == fingerprint
    assert load_encoder(tmp_path / "other").fingerprint != fingerprint


def test_folder_without_a_vae(tmp_path):
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ValueError, match="AutoencoderKL or AutoencoderTiny"):
        load_encoder(tmp_path)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.rand(1, 1, 8, 8), ValueError, r"\[B, 3, H, W\]"),
        (torch.rand(3, 8, 8), ValueError, r"\[B, 3, H, W\]"),
        (torch.rand(1, 3, 8, 8) * 2, ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "float"),
        ([[0.5]], TypeError, "torch.Tensor"),
    ],
)
def test_invalid_images(kl_folder, bad, error, match):
    for encoder in (load_encoder("pixel"), load_encoder(kl_folder)):
        with pytest.raises(error, match=match):
            encoder.encode(bad)


def test_decode_checks_latent_channels(kl_folder):
    with pytest.raises(ValueError, match=r"\[B, 4, h, w\]"):
        load_encoder(kl_folder).decode(torch.zeros(1, 3, 4, 4))


def _embedded_psnr(split: str) -> float:
    """Mean PSNR (dB) of D(E(x)) over four 256² crops of one split's photos (none trained on)."""
    from dotlib.data import embedded_crops

    assert (EMBEDDED_VAE_DIR / "config.json").is_file(), f"embedded VAE weights missing at {EMBEDDED_VAE_DIR}"
    encoder = load_encoder("embedded")
    assert (encoder.name, encoder.factor, encoder.latent_channels) == ("embedded", 2, 4)
    x = embedded_crops(split, 256, n=4, seed=0)
    reconstruction = encoder.decode(encoder.encode(x), size=(256, 256))
    mse = ((reconstruction - x) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).mean().item()


@pytest.mark.parametrize("split", ["target", "source"])
def test_embedded_vae_reconstructs_unseen_photos(split):
    """D(E(x)) on photos never trained on (the fitting photos): PSNR >= 27 dB."""
    psnr = _embedded_psnr(split)
    assert math.isfinite(psnr) and psnr >= 27.0, f"embedded VAE reconstruction PSNR {psnr:.2f} dB < 27 dB"


def test_embedded_vae_reconstructs_eval_photos():
    """The study's D(E(x)) row: PSNR >= 27 dB on 256² crops of the evaluation photos."""
    psnr = _embedded_psnr("eval")
    assert math.isfinite(psnr) and psnr >= 27.0, f"embedded VAE reconstruction PSNR {psnr:.2f} dB < 27 dB"


def test_embedded_vae_loads_without_warnings():
    """diffusers' AutoencoderTiny false alarm about its own config key is not shown to users."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    try:
        load_encoder("embedded")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
