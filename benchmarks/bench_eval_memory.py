"""Memory slope and time per signal of the streamed evaluation, against the authors' loop structure.

Evaluates three sizes (``--sizes``, default 64 256 512 images) of an ImageNet-val style folder
with :func:`dotlib.runner.run_folder_task` — the full α sweep (-1 to 2 by 0.1, 31 values), both
decodings, every metric (PSNR, SSIM, MSE, LPIPS, SWD, the detail index, FID, KID, IS) — on
stand-in networks with random weights (:mod:`dotlib.standins`: a diffusers ``AutoencoderKL``,
clean-fid's Inception format, VGG16 for LPIPS; the restorer is the embedded ``mse_net``). Each
run is a fresh process reporting its peak resident host memory (and, on CUDA, the peak device
memory allocated); the slope of peak memory over the number of images (least squares over the
three sizes) is what a 50 000-image run would add per image. Goal: at most 0.05 MiB per image.

It also runs the authors' loop structure (``dmax/main.py``) on the two smaller sizes: per
batch, x* = model(y), one transport, every α by mixing, and the metrics of each α updated
(PSNR, SSIM, LPIPS, FID, KID, IS: torchmetrics' set), with the same networks and accumulators.
Both loops are timed per image per signal at the margin (the difference between the two
smaller runs over the images between them, so loading and fitting cancel): dotlib measures 66
signals per image (31 α × 2 decodings, x, D(E(x)), y, x*) plus SWD and the detail index, the
authors' loop 31. Goal: dotlib's time per signal at most the authors'.

    python benchmarks/bench_eval_memory.py [--device cuda] [--sizes 64 256 512] [--size 48]

The KID sample keeps ``--kid-capacity`` images per signal (default: the smallest size), so every
run holds a full KID sample and only a leak would make memory grow with the number of images.
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
    """One measurement in THIS process (called in a child): seconds, signals and peak memory."""
    from dotlib.runner import run_folder_task

    torch.set_num_threads(args.threads)
    common = dict(task="sr4", restorer="mse_net", data=args.data, encoder=args.vae, size=args.size, n_fit=4,
                  max_eval=n_eval, seed=0, device=args.device, batch_size=args.batch_size, num_workers=0)
    began = time.perf_counter()
    if loop == "dotlib":
        run = run_folder_task(**common, alphas=ALPHAS, secondary_alphas=ALPHAS, decodes=("direct", "residual"),
                              kid_capacity=args.kid_capacity)
        images, signals = int(run.table.n_images.max()), len(run.table)
    else:
        images, signals = _authors_loop(common, args.kid_capacity), len(ALPHAS)
    result = {"n": images, "signals": signals, "seconds": time.perf_counter() - began,
              "peak_host_mib": _peak_host_mib()}
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
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    memory = f"peak host {result['peak_host_mib']:.1f} MiB" + (
        f", device {result['peak_device_mib']:.1f} MiB" if "peak_device_mib" in result else "")
    print(f"{loop:7s} {result['n']:4d} images, {result['signals']:2d} signals: {memory}, {result['seconds']:.1f} s",
          flush=True)
    return result


def _slope(runs: list[dict], key: str) -> float:
    """Least-squares slope of ``key`` over the number of images (MiB per image)."""
    n = [run["n"] for run in runs]
    mean_n = sum(n) / len(n)
    mean_y = sum(run[key] for run in runs) / len(runs)
    return sum((x - mean_n) * (run[key] - mean_y) for x, run in zip(n, runs)) / sum((x - mean_n) ** 2 for x in n)


def _per_signal(small: dict, large: dict) -> float:
    """Seconds per image per signal at the margin between two runs of one loop."""
    return (large["seconds"] - small["seconds"]) / (large["n"] - small["n"]) / large["signals"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs=3, default=[64, 256, 512], help="three numbers of images")
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

    sizes = sorted(args.sizes)
    args.kid_capacity = args.kid_capacity or sizes[0]
    with tempfile.TemporaryDirectory(prefix="dotlib-bench-") as root:
        env = build_standins(Path(root), n_images=sizes[-1] + 4, image_size=args.size)
        args.env = {**os.environ, **env}
        args.data, args.vae = env["DOTLIB_IMAGENET_VAL"], env["DOTLIB_SD_VAE"]
        print(f"stand-in networks, {args.size}² images, 31 α, device {args.device}, "
              f"KID sample {args.kid_capacity} images per signal", flush=True)
        ours = [_child(args, n, "dotlib") for n in sizes]
        theirs = [_child(args, n, "authors") for n in sizes[:2]]
    ratio = _per_signal(*ours[:2]) / _per_signal(*theirs)
    print(f"time per image per signal (between {sizes[0]} and {sizes[1]} images): dotlib "
          f"{_per_signal(*ours[:2]):.4f} s, authors' loop {_per_signal(*theirs):.4f} s; dotlib/authors {ratio:.2f} "
          f"(goal <= 1)")
    if "peak_device_mib" in ours[0]:
        print(f"device-memory slope: {_slope(ours, 'peak_device_mib'):.4f} MiB per image")
    print(f"host-memory slope over {sizes[0]}, {sizes[1]}, {sizes[2]} images: {_slope(ours, 'peak_host_mib'):.4f} "
          f"MiB per image (goal <= 0.05)")


if __name__ == "__main__":
    main()
