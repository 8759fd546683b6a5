"""Throughput of latent DOT and its overhead over the VAE (issue 3).

Prints, per encoder and resolution: fit and transport images/s, and the DOT overhead —
all time outside the VAE's encode and decode networks (validation, padding, patch
extraction, statistics, the operator, patch moves, folding, mixing) — as a share of
the VAE round trip. Goal: overhead <= 10 %.

Runs the embedded VAE at 256² and 512² on the chosen device; with CUDA it also runs a
Stable-Diffusion-shaped ``AutoencoderKL`` (random weights, 128-256-512-512 channels,
4 latent channels) at 512² in float32 and bfloat16, the published setting.

    python benchmarks/bench_latent_ot.py [--device cuda] [--n 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from dotlib.data import PHOTO_POOL, load_photo, photo_pool
from dotlib.encoders import DiffusersEncoder, Encoder, load_encoder
from dotlib.latent_ot import LatentOT


class TimedEncoder(Encoder):
    """Wraps an encoder and adds up the seconds spent inside its VAE networks."""

    def __init__(self, inner: Encoder):
        super().__init__(inner.name, inner.factor, inner.latent_channels, inner.device, inner.fingerprint)
        self.inner = inner
        self.seconds = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _timed(self, function, *arguments):
        self._sync()
        start = time.perf_counter()
        out = function(*arguments)
        self._sync()
        self.seconds += time.perf_counter() - start
        return out

    def _encode(self, images, generator):
        return self._timed(self.inner._encode, images, generator)

    def _decode(self, latents):
        return self._timed(self.inner._decode, latents)


def sd_shaped_encoder(device: str, dtype: torch.dtype) -> Encoder:
    """A random ``AutoencoderKL`` with Stable Diffusion's VAE architecture (factor 8, 4 channels)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512,
    )
    return DiffusersEncoder(vae, "sd-shaped-random", device=device, dtype=dtype)


def measure(encoder: Encoder, size: int, n: int, repeats: int, patch_size: int, batch_size: int) -> dict:
    """Best-of-``repeats`` timings of fitting n + n images and transporting n images at ``size``²."""
    timed = TimedEncoder(encoder)
    names = [name for name in PHOTO_POOL if min(load_photo(name).shape[-2:]) >= size]   # never upscaled
    pool, _ = photo_pool(size, crops_per_photo=4, names=names)
    if pool.shape[0] < 3 * n:
        raise SystemExit(f"the photo pool gives {pool.shape[0]} crops of {size}²; {3 * n} are needed")
    target, source, x_star = pool[0:3 * n:3], pool[1:3 * n:3], pool[2:3 * n:3]
    warm = LatentOT(timed, patch_size=patch_size, batch_size=batch_size)
    warm.update(source[:1], "source").update(target[:1], "target").fit()
    warm.transport(x_star[:1])
    best = None
    for _ in range(repeats):
        model = LatentOT(timed, patch_size=patch_size, batch_size=batch_size)
        timed.seconds = 0.0
        start = time.perf_counter()
        model.update(source, "source").update(target, "target")
        model.fit()
        fit_total, fit_vae = time.perf_counter() - start, timed.seconds
        timed.seconds = 0.0
        start = time.perf_counter()
        model.transport(x_star)
        timed._sync()
        transport_total, transport_vae = time.perf_counter() - start, timed.seconds
        run = dict(fit_total=fit_total, fit_vae=fit_vae, transport_total=transport_total,
                   transport_vae=transport_vae)
        if best is None or run["transport_total"] + run["fit_total"] < best["transport_total"] + best["fit_total"]:
            best = run
    return dict(
        fit_ips=2 * n / best["fit_total"],
        transport_ips=n / best["transport_total"],
        vae_roundtrip_ips=n / best["transport_vae"],
        fit_overhead=(best["fit_total"] - best["fit_vae"]) / best["fit_vae"],
        transport_overhead=(best["transport_total"] - best["transport_vae"]) / best["transport_vae"],
    )


def report(label: str, size: int, row: dict) -> None:
    print(f"{label:<28} {size:>4}²  fit {row['fit_ips']:8.2f} img/s  transport {row['transport_ips']:8.2f} img/s  "
          f"(VAE round trip alone {row['vae_roundtrip_ips']:8.2f} img/s)  DOT overhead: transport "
          f"{100 * row['transport_overhead']:5.1f} % of the VAE round trip, fit {100 * row['fit_overhead']:5.1f} % "
          f"of the encodes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=4, help="images per distribution and transported")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--patch-size", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    print(f"latent DOT benchmark: device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, n = {args.n} (+{args.n} to fit), p = {args.patch_size}, "
          f"best of {args.repeats}")
    embedded = load_encoder("embedded", device=args.device)
    for size in args.sizes:
        report("embedded VAE (float32)", size, measure(embedded, size, args.n, args.repeats, args.patch_size,
                                                       args.batch_size))
    if torch.device(args.device).type != "cuda":
        print("SD-shaped AutoencoderKL (128-256-512-512) at 512²: skipped, needs CUDA "
              "(about 2 s to encode and 4 s to decode one 256² image on 2 CPU cores)")
        return
    for dtype in (torch.float32, torch.bfloat16):
        encoder = sd_shaped_encoder(args.device, dtype)
        report(f"SD-shaped VAE ({str(dtype).split('.')[-1]})", 512,
               measure(encoder, 512, args.n, args.repeats, args.patch_size, args.batch_size))


if __name__ == "__main__":
    main()
