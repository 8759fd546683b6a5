"""Peak memory of the streamed evaluation at two sizes, and its time per image against the authors' loop.

Evaluates ``--small`` and ``--large`` images (default 64 and 512) of an ImageNet-val style
folder with :func:`dotlib.runner.run_folder_task` — the full α sweep (-1 to 2 by 0.1, 31
values), both decodings, every metric (PSNR, SSIM, MSE, LPIPS, SWD, the detail index, FID,
KID, IS) — on stand-in networks with random weights (:mod:`dotlib.standins`: a diffusers
``AutoencoderKL``, clean-fid's Inception format, VGG16 for LPIPS; the restorer is the
embedded ``mse_net``). Each size runs in its own process, which reports its peak resident
host memory (and, on CUDA, the peak device memory allocated).

It then times, on the small set, dotlib's loop against the authors' loop structure
(``dmax/main.py``): per batch, x* = model(y), one transport, every α by mixing, and the
metrics of each α updated (PSNR, SSIM, LPIPS, FID, KID, IS: torchmetrics' set), with the
same networks and accumulators. dotlib's loop does more per batch (x, D(E(x)), y and the
residual decoding as extra signals; SWD and the detail index), so the ratio says what
that costs.

    python benchmarks/bench_eval_memory.py [--device cuda] [--small 64] [--large 512] [--size 48]

The last line reads ``peak memory ratio <large>/<small>: R`` (goal R <= 1.2). The KID
sample keeps ``--kid-capacity`` images per signal (default: the small size), so both runs
hold full KID samples and memory does not grow with the number of images.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ALPHAS = [round(-1.0 + 0.1 * i, 10) for i in range(31)]


def _peak_host_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run(args: argparse.Namespace, n_eval: int, loop: str) -> dict:
    """One measurement in THIS process (called in a child): peak memory and seconds per image."""
    from dotlib.runner import run_folder_task

    torch.set_num_threads(args.threads)
    common = dict(task="sr4", restorer="mse_net", data=args.data, encoder=args.vae, size=args.size, n_fit=4,
                  max_eval=n_eval, seed=0, device=args.device, batch_size=args.batch_size, num_workers=0)
    began = time.perf_counter()
    if loop == "dotlib":
        run = run_folder_task(**common, alphas=ALPHAS, secondary_alphas=ALPHAS, decodes=("direct", "residual"),
                              kid_capacity=args.kid_capacity)
        images = int(run.table.n_images.max())
    else:
        images = _authors_loop(common, args.kid_capacity)
    seconds = time.perf_counter() - began
    result = {"n": images, "seconds_per_image": seconds / images, "peak_host_mib": _peak_host_mib()}
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        result["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def _authors_loop(common: dict, kid_capacity: int) -> int:
    """The authors' evaluation structure on the same networks: one transport per batch, α by mixing."""
    from dotlib.data import ImageFolder
    from dotlib.degradations import degrade
    from dotlib.encoders import load_encoder
    from dotlib.latent_ot import LatentOT
    from dotlib.metrics import load_inception, load_lpips, mse, psnr, ssim
    from dotlib.metrics.inception import classifier_weights
    from dotlib.metrics.streaming import FeatureGaussian, FeatureSample, PerImageMeans, SplitScores
    from dotlib.restorers import get_restorer

    device, size = torch.device(common["device"]), common["size"]
    folder = ImageFolder(common["data"], resize=size, crop=size)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(0)).tolist()
    model = get_restorer(common["restorer"], common["task"], device=device)
    operator = LatentOT(load_encoder(common["encoder"], device=device), patch_size=5)
    fit = torch.stack([folder[i] for i in order[:common["n_fit"]]])
    operator.update(fit, "target").update(model(degrade(common["task"], fit, seed=0)).clamp(0, 1), "source").fit()
    features = load_inception(device, output="features")
    head, lpips = classifier_weights(features).double(), load_lpips(device)
    names = ("psnr", "ssim", "mse", "lpips")
    meters = {a: (PerImageMeans(names), FeatureGaussian(2048), FeatureSample(kid_capacity), SplitScores(1008))
              for a in ALPHAS}
    reference = (FeatureGaussian(2048), FeatureSample(kid_capacity))
    evaluated = order[common["n_fit"]:common["n_fit"] + common["max_eval"]]
    for start in range(0, len(evaluated), common["batch_size"]):
        batch = evaluated[start:start + common["batch_size"]]
        x = torch.stack([folder[i] for i in batch]).to(device)
        x_star = model(degrade(common["task"], x.cpu(), seed=start).to(device)).clamp(0, 1)
        x_hat0 = operator.transport(x_star, 0.0)
        clean_feats = features(x)
        reference[0].update(clean_feats)
        reference[1].update(clean_feats, batch)
        for alpha in ALPHAS:
            x_alpha = ((1.0 - alpha) * x_hat0 + alpha * x_star).clamp(0.0, 1.0)   # their eq. (2), one α at a time
            per_image, gaussian, sample, scores = meters[alpha]
            per_image.update({"psnr": psnr(x_alpha, x), "ssim": ssim(x_alpha, x), "mse": mse(x_alpha, x),
                              "lpips": lpips(x_alpha, x)})
            feats = features(x_alpha)
            gaussian.update(feats)
            sample.update(feats, batch)
            scores.update(torch.softmax(torch.from_numpy(feats) @ head.T, dim=1), batch)
    for per_image, gaussian, sample, scores in meters.values():   # what the table needs
        per_image.compute(), gaussian.compute(reference[0]), sample.compute(reference[1], 10, 16)
    return len(evaluated)


def _child(args: argparse.Namespace, n_eval: int, loop: str) -> dict:
    command = [sys.executable, __file__, "--child", loop, "--n-eval", str(n_eval), "--data", args.data,
               "--vae", args.vae, "--size", str(args.size), "--device", args.device, "--batch-size",
               str(args.batch_size), "--kid-capacity", str(args.kid_capacity), "--threads", str(args.threads)]
    completed = subprocess.run(command, capture_output=True, text=True, env=args.env)
    if completed.returncode != 0:
        raise RuntimeError(f"{loop} run on {n_eval} images failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--size", type=int, default=48, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--kid-capacity", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("dotlib", "authors"), help=argparse.SUPPRESS)
    parser.add_argument("--n-eval", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--vae", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run(args, args.n_eval, args.child)))
        return
    import os

    from dotlib.standins import build_standins

    args.kid_capacity = args.kid_capacity or args.small
    with tempfile.TemporaryDirectory(prefix="dotlib-bench-") as root:
        env = build_standins(Path(root), n_images=args.large + 4, image_size=args.size)
        args.env = {**os.environ, **env}
        args.data, args.vae = env["DOTLIB_IMAGENET_VAL"], env["DOTLIB_SD_VAE"]
        print(f"stand-in networks, {args.size}² images, 31 α, device {args.device}, "
              f"KID sample {args.kid_capacity} images per signal", flush=True)
        small = _child(args, args.small, "dotlib")
        print(f"dotlib  {small['n']:4d} images: peak host {small['peak_host_mib']:.0f} MiB"
              + (f", device {small['peak_device_mib']:.0f} MiB" if "peak_device_mib" in small else "")
              + f", {small['seconds_per_image']:.3f} s/image", flush=True)
        authors = _child(args, args.small, "authors")
        print(f"authors' loop {authors['n']:4d} images: {authors['seconds_per_image']:.3f} s/image; "
              f"time per image dotlib/authors: {small['seconds_per_image'] / authors['seconds_per_image']:.2f}",
              flush=True)
        large = _child(args, args.large, "dotlib")
        print(f"dotlib  {large['n']:4d} images: peak host {large['peak_host_mib']:.0f} MiB"
              + (f", device {large['peak_device_mib']:.0f} MiB" if "peak_device_mib" in large else "")
              + f", {large['seconds_per_image']:.3f} s/image", flush=True)
    if "peak_device_mib" in small:
        print(f"peak device memory ratio {args.large}/{args.small}: "
              f"{large['peak_device_mib'] / small['peak_device_mib']:.2f}")
    print(f"peak memory ratio {args.large}/{args.small}: {large['peak_host_mib'] / small['peak_host_mib']:.2f}")


if __name__ == "__main__":
    main()
