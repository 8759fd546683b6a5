"""The GPU check's steps, run by ``tools/gpu_check.sh``; one JSON report, exit 1 on any failure.

Steps (each timed; its numbers and ``ok`` go to ``<out>/gpu_check.json``):

1. ``preflight``: the driver (``nvidia-smi``), torch and CUDA, and every module the check imports.
2. ``equality``: the same inputs on the device and on the CPU, float32: ``LatentOT`` (the
   stand-in SD-shaped VAE, fit and x̂0) and the streaming evaluator's every metric (SSIM, LPIPS,
   FID, KID, IS, SWD, ...); each must agree to a relative 1e-5 (absolute 1e-6 near zero).
3. ``throughput``: the folder runner with ``studies/paper.yaml``'s sr4_swinir settings (31 α,
   both decodings, the disjoint ablation, every metric) on stand-in weights, at 512², in two
   fresh processes on 32 and 96 images. Seconds per image are the difference of the two runs
   over the 64 images between them (loading and fitting cancel); host and device memory slopes
   in MiB per image likewise. A third, profiled run on 8 images gives the share of the wall
   time the GPU spends in kernels and the host syncs torch reports (whole run, fitting included).
   Projected hours for 6 tasks × 50 000 images on 1 and 8 GPUs.
4. ``dryrun``: ``python -m dotlib.dryrun`` on the device.

``--rehearse`` runs the same steps on the CPU at 64², on 4 and 12 images, and the dry run of
one task step: what a CI machine can afford, from a venv that holds only what a bare GPU
machine has plus the wheelhouse (``tools/bare_venv.py``, ``make wheelhouse PY_VERSION=3.11``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "skimage", "safetensors",
           "huggingface_hub", "diffusers", "spandrel", "spandrel_extra_arches", "lpips", "cleanfid", "papermill",
           "ipykernel", "yaml", "dotlib")
SETTINGS = {
    "gpu": {"device": "cuda", "size": 512, "images": (32, 96), "profiled": 8, "dryrun": ["--device", "cuda"]},
    "rehearsal": {"device": "cpu", "size": 64, "images": (4, 12), "profiled": 4,
                  "dryrun": ["--device", "cpu", "--only", "sr4_swinir"]},
}
RELATIVE, ABSOLUTE, PIXELS = 1e-5, 1e-6, 1e-5
PAPER_IMAGES = 50_000


# ------------------------------------------------------------------------------ steps


def preflight(settings: dict) -> dict:
    """Driver, torch, CUDA and every module's version; fails on a missing module or (on a GPU) no CUDA."""
    import importlib

    import torch

    versions, failed = {}, []
    for name in MODULES:
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "present")
        except Exception as error:   # any import failure is what this step reports
            versions[name], failed = f"{type(error).__name__}: {error}", failed + [name]
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True) if settings["device"] == "cuda" else None
    cuda = torch.cuda.is_available()
    return {"ok": not failed and (cuda or settings["device"] == "cpu"), "python": platform.python_version(),
            "torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "driver": None if smi is None else (smi.stdout.strip() or smi.stderr.strip()),
            "modules": versions, "missing": failed}


def _photos(size: int, count: int):
    """``count`` clean crops ``[count, 3, size, size]`` of the package photos (float32 in [0, 1])."""
    import torch

    from dotlib.data import ImageFolder

    folder = ImageFolder(ROOT / "dotlib" / "photos", resize=size, crop=size)
    return torch.stack([folder[i % len(folder)] for i in range(count)])


def _deviation(a: float, b: float) -> float:
    """``|a − b|`` over the larger of ``RELATIVE·|b|`` and ``ABSOLUTE``: at most 1 passes."""
    return abs(a - b) / max(RELATIVE * abs(b), ABSOLUTE)


def _evaluator_rows(device: str, clean, signals: dict) -> dict:
    from dotlib.metrics import StreamingEvaluator
    from dotlib.pipeline import perception_models

    features, classifier, lpips, missing = perception_models(device)
    if missing:
        raise RuntimeError(f"stand-in perception models did not load: {missing}")
    evaluator = StreamingEvaluator(clean[:4], device=device, features=features, classifier=classifier, lpips=lpips,
                                   kid_capacity=64, kid_subsets=10, kid_subset_size=4, is_splits=2)
    evaluator.update(clean.to(device), {name: images.to(device) for name, images in signals.items()},
                     list(range(clean.shape[0])))
    return evaluator.compute()


def equality(settings: dict, env: dict) -> dict:
    """LatentOT and every evaluator metric on the device against the CPU; worst deviations per quantity."""
    import torch

    from dotlib.latent_ot import LatentOT

    clean = _photos(64, 8)
    restored = torch.nn.functional.avg_pool2d(clean, 3, 1, 1)
    outputs = {}
    for device in (settings["device"], "cpu"):
        ot = LatentOT(env["DOTLIB_SD_VAE"], patch_size=3, device=device, batch_size=4)
        ot.update(clean.to(device), "target").update(restored.to(device), "source")
        latent_w2 = ot.fit()
        x_hat0 = ot.transport(restored[:2].to(device), 0.0).cpu()
        rows = _evaluator_rows(device, clean, {"x_star": restored, "x_hat0": x_hat0.repeat(4, 1, 1, 1).clamp(0, 1)})
        outputs[device] = {"latent_w2": latent_w2, "x_hat0": x_hat0, "rows": rows}
    device, cpu = outputs[settings["device"]], outputs["cpu"]
    worst = {"latent_w2": _deviation(device["latent_w2"], cpu["latent_w2"]),
             "x_hat0_max_abs": float((device["x_hat0"] - cpu["x_hat0"]).abs().max()) / PIXELS}
    for signal, row in cpu["rows"].items():
        for metric, value in row.items():
            if isinstance(value, float) and value == value:
                worst[metric] = max(worst.get(metric, 0.0), _deviation(device["rows"][signal][metric], value))
    failed = sorted(name for name, value in worst.items() if value > 1.0)
    return {"ok": not failed, "compared": f"{settings['device']} against cpu", "tolerance":
            f"relative {RELATIVE:g}, absolute {ABSOLUTE:g} (x̂0 pixels: absolute {PIXELS:g})",
            "worst_in_tolerance_units": {k: round(v, 4) for k, v in sorted(worst.items())}, "failed": failed}


def paper_task_steps() -> int:
    """How many task steps (restorers) ``studies/paper.yaml`` runs on the validation images."""
    from dotlib.reproduce import load_study

    return sum("restorer" in step.parameters for step in load_study(ROOT / "studies" / "paper.yaml").steps.values())


def paper_run(step: str = "sr4_swinir") -> dict:
    """``run_folder_task``'s arguments for a task step of ``studies/paper.yaml``, as notebook 03 passes them."""
    from dotlib.reproduce import load_study
    from dotlib.reproduce import notebook_parameters
    from dotlib.runner import RUN_OPTIONS
    from dotlib.study import default_alphas

    study = load_study(ROOT / "studies" / "paper.yaml")
    parameters = {**notebook_parameters(study.steps[step].notebook), **study.steps[step].parameters}
    config = {key: value for key, value in parameters.items() if key in RUN_OPTIONS}
    config["alphas"] = default_alphas(parameters["alpha_start"], parameters["alpha_stop"], parameters["alpha_step"])
    config["secondary_alphas"] = default_alphas(parameters["alpha_start"], parameters["alpha_stop"],
                                                parameters["secondary_alpha_step"])
    return config


def measure_run(size: int, images: int, device: str, profiled: bool) -> dict:
    """One folder run in this process: seconds, peak host and device MiB (and the GPU's kernel share)."""
    import torch

    from dotlib.runner import run_folder_task

    config = {**paper_run(), "size": size, "max_eval": images, "device": device, "num_workers": 0}
    began = time.perf_counter()
    if profiled and device == "cuda":   # kernel time, and the host syncs torch reports (sync debug mode)
        import warnings

        from torch.profiler import ProfilerActivity, profile

        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught, \
                profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
            warnings.simplefilter("always")
            run_folder_task(**config)
        torch.cuda.set_sync_debug_mode(0)
        wall = time.perf_counter() - began
        kernels = sum(event.self_device_time_total for event in trace.key_averages()) / 1e6
        syncs = sum("synchroniz" in str(warning.message) for warning in caught)
        return {"seconds": wall, "gpu_share": kernels / wall, "host_syncs": syncs,
                "batches": -(-images // config["batch_size"])}
    run = run_folder_task(**config)
    result = {"seconds": time.perf_counter() - began, "images": int(run.table.n_images.max()),
              "signals": len(run.table), "peak_host_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        result["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def _child(env: dict, size: int, images: int, device: str, profiled: bool) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps([size, images, device, profiled])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"run on {images} images failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(settings: dict, env: dict) -> dict:
    """Marginal seconds and memory per image between two fresh runs, the GPU share, the projection."""
    small_n, large_n = settings["images"]
    small, large = (_child(env, settings["size"], n, settings["device"], False) for n in (small_n, large_n))
    extra = large["images"] - small["images"]
    per_image = (large["seconds"] - small["seconds"]) / extra
    result = {"ok": per_image > 0, "size": settings["size"], "signals": large["signals"], "runs": [small, large],
              "seconds_per_image": per_image, "host_mib_per_image": (large["peak_host_mib"] - small["peak_host_mib"]) / extra}
    if "peak_device_mib" in large:
        result["device_mib_per_image"] = (large["peak_device_mib"] - small["peak_device_mib"]) / extra
        profiled = _child(env, settings["size"], settings["profiled"], "cuda", True)
        result.update(gpu_share=profiled["gpu_share"], host_syncs=profiled["host_syncs"],
                      profiled_batches=profiled["batches"])
    steps = paper_task_steps()
    hours = per_image * PAPER_IMAGES * steps / 3600
    result["projected_hours"] = {"task_steps": steps, "1_gpu": hours, "8_gpus": hours / 8} \
        if settings["device"] == "cuda" else None
    return result


def dryrun(settings: dict, env: dict, assets: str) -> dict:
    """The paper dry run on the device (its own stand-ins, in ``assets``: the VGG16 file is reused)."""
    done = subprocess.run([sys.executable, "-m", "dotlib.dryrun", "--nproc", "1", "--assets", assets,
                           *settings["dryrun"]],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"ok": done.returncode == 0, "exit": done.returncode, "last_lines": lines[-12:]}


# ------------------------------------------------------------------------------ driver


def _step(report: dict, name: str, function, *args) -> None:
    began = time.perf_counter()
    try:
        result = function(*args)
    except Exception as error:   # a failed step is reported, and the others still run
        result = {"ok": False, "error": f"{type(error).__name__}: {error}",
                  "traceback": traceback.format_exc().splitlines()[-8:]}
    result["seconds"] = round(time.perf_counter() - began, 1)
    report["steps"][name] = result
    print(f"{name}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s", flush=True)
    print(json.dumps({k: v for k, v in result.items() if k not in ("ok", "seconds")}, indent=1, default=str),
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearse", action="store_true", help="CPU, tiny sizes (CI)")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_check"), help="folder for gpu_check.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_run(*json.loads(args.child))))
        return 0
    from dotlib.standins import build_standins

    mode = "rehearsal" if args.rehearse else "gpu"
    settings = SETTINGS[mode]
    report = {"mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "settings": settings, "steps": {}}
    _step(report, "preflight", preflight, settings)
    with tempfile.TemporaryDirectory(prefix="dotlib-gpu-check-") as root:
        env = {**os.environ, **build_standins(root, n_images=max(settings["images"]) + 36,
                                              image_size=settings["size"] + 32)}
        os.environ.update(env)
        _step(report, "equality", equality, settings, env)
        _step(report, "throughput", throughput, settings, env)
        _step(report, "dryrun", dryrun, settings, env, root)
    report["ok"] = all(step["ok"] for step in report["steps"].values())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    failed = [name for name, step in report["steps"].items() if not step["ok"]]
    print(f"gpu_check ({mode}): {'every step passed' if not failed else 'FAILED: ' + ', '.join(failed)}; "
          f"report in {out / 'gpu_check.json'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
