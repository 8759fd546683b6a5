"""Training of the embedded VAE: a small diffusers autoencoder on the embedded photos.

The run is resumable: it checkpoints model, optimiser, step and random state every
``checkpoint_every`` steps, and a run restarted with the same checkpoint path goes on
from there. The learning rate follows a linear warm-up then a cosine decay over
``steps``, so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from .data import crop_batch, load_photo, split_photos
from .io import atomic_path
from .progress import progress as progress_bar

__all__ = ["EMBEDDED_VAE_CONFIG", "build_embedded_vae", "train_vae", "TrainingPhotos"]

#: Architecture of the embedded VAE: a diffusers ``AutoencoderTiny`` (the TAESD design, no
#: normalisation layers), downsampling factor 2, 4 latent channels, 0.26 M parameters.
#: A GroupNorm ``AutoencoderKL`` of the same size was tried first and dropped: with 32
#: channels its GroupNorm is an instance norm, so its reconstructions depended on image
#: size (22.5 dB on 32² tiles, 18.7 dB on whole 256² crops, same weights) and it had
#: reached only 16.3 dB on unseen 256² photos after 1000 steps, where this design reached
#: 22.7 dB after 95 steps on the same CPU.
EMBEDDED_VAE_CONFIG: dict = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    encoder_block_out_channels=(32, 32),
    decoder_block_out_channels=(32, 32),
    num_encoder_blocks=(1, 3),
    num_decoder_blocks=(3, 1),
    act_fn="relu",
    upsample_fn="nearest",
    upsampling_scaling_factor=2,
    scaling_factor=1.0,
)


def build_embedded_vae(seed: int = 0):
    """A freshly initialised embedded-architecture ``AutoencoderTiny``."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(**EMBEDDED_VAE_CONFIG)


class TrainingPhotos:
    """Random augmented crops of the ``train`` split, at three scales, flips and 90° turns."""

    def __init__(self, crop: int, seed: int, scales: tuple[float, ...] = (1.0, 0.75, 0.5)):
        self.crop = crop
        self.images: list[torch.Tensor] = []
        for name in split_photos("train"):
            photo = load_photo(name)
            for scale in scales:
                height, width = photo.shape[-2:]
                size = (round(height * scale), round(width * scale))
                if min(size) < crop:
                    continue
                resized = photo if scale == 1.0 else torch.nn.functional.interpolate(
                    photo[None], size=size, mode="bicubic", align_corners=False, antialias=True
                )[0].clamp(0.0, 1.0)
                self.images.append(resized)
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, batch_size: int) -> torch.Tensor:
        """``float32 [batch_size, 3, crop, crop]`` in [0, 1]."""
        out = torch.empty(batch_size, 3, self.crop, self.crop)
        for index in range(batch_size):
            image = self.images[int(torch.randint(len(self.images), (1,), generator=self.generator))]
            height, width = image.shape[-2:]
            top = int(torch.randint(height - self.crop + 1, (1,), generator=self.generator))
            left = int(torch.randint(width - self.crop + 1, (1,), generator=self.generator))
            patch = image[:, top:top + self.crop, left:left + self.crop]
            turns = int(torch.randint(4, (1,), generator=self.generator))
            patch = torch.rot90(patch, turns, dims=(1, 2))
            if bool(torch.randint(2, (1,), generator=self.generator)):
                patch = patch.flip(2)
            out[index] = patch
        return out


def _learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return 0.01 * peak + 0.99 * peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def _set_learning_rate(optimiser, step: int, steps: int, peak: float, warmup: int) -> float:
    """Give every parameter group of ``optimiser`` the learning rate of ``step``; returns it."""
    lr = _learning_rate(step, steps, peak, warmup)
    for group in optimiser.param_groups:
        group["lr"] = lr
    return lr


def save_pretrained_atomic(model, output_dir: str | Path) -> Path:
    """``model.save_pretrained(output_dir)`` (safetensors) where each file is replaced atomically.

    The files are written to a temporary folder beside ``output_dir`` and moved in with
    ``os.replace``, so an interrupted save never leaves a half-written weight file.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}.", dir=output_dir.parent) as temporary:
        model.save_pretrained(temporary, safe_serialization=True)
        for file in sorted(Path(temporary).iterdir()):
            os.replace(file, output_dir / file.name)
    return output_dir


@torch.no_grad()
def reconstruction_psnr(vae, images: torch.Tensor, device: torch.device) -> float:
    """Mean PSNR (dB) of ``decode(encode(x))`` over a batch ``[B, 3, H, W]``."""
    vae.eval()
    values = []
    for image in images:
        x = image[None].to(device) * 2 - 1
        recon = vae.decode(vae.encode(x).latents).sample
        recon = ((recon + 1) / 2).clamp(0, 1)
        mse = ((recon - image[None].to(device)) ** 2).mean().item()
        values.append(10 * math.log10(1.0 / max(mse, 1e-12)))
    vae.train()
    return sum(values) / len(values)


def train_vae(
    output_dir: str | Path,
    checkpoint_path: str | Path,
    steps: int = 4400,
    batch_size: int = 16,
    crop: int = 64,
    learning_rate: float = 1e-3,
    warmup: int = 200,
    grad_clip: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_every: int = 100,
    monitor_every: int = 250,
    monitor_split: str = "target",
) -> pd.DataFrame:
    """Train (or resume) the embedded VAE and ``save_pretrained`` it to ``output_dir``.

    Loss: mean squared error in [0, 1] of the reconstruction; gradients are clipped to
    norm ``grad_clip``. Every
    ``monitor_every`` steps the reconstruction PSNR of four 256² crops of the
    ``monitor_split`` photos (never trained on) is logged. Returns the log as a table
    with columns ``step, loss, lr, psnr_monitor, seconds``.
    """
    device_ = torch.device(device)
    checkpoint_path = Path(checkpoint_path)
    output_dir = Path(output_dir)
    vae = build_embedded_vae(seed).to(device_)
    optimiser = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    photos = TrainingPhotos(crop, seed)
    monitor = crop_batch([load_photo(n) for n in split_photos(monitor_split)], 256, 4, seed=1234)
    start, log = 0, []
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device_, weights_only=False)
        vae.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        photos.generator.set_state(state["generator"])
        start, log = state["step"], state["log"]
        print(f"resuming from step {start} ({checkpoint_path})")
    if start >= steps:
        save_pretrained_atomic(vae, output_dir)
        return pd.DataFrame(log)

    def save_checkpoint(step: int) -> None:
        with atomic_path(checkpoint_path) as temporary:
            torch.save({"model": vae.state_dict(), "optimiser": optimiser.state_dict(),
                        "generator": photos.generator.get_state(), "step": step, "log": log},
                       temporary)
        save_pretrained_atomic(vae, output_dir)

    vae.train()
    began = time.perf_counter()
    running = None
    progress = progress_bar(range(start, steps), initial=start, total=steps, desc="embedded VAE",
                            unit="step", mininterval=30)
    for step in progress:
        lr = _set_learning_rate(optimiser, step, steps, learning_rate, warmup)
        x = photos.batch(batch_size).to(device_)
        recon = (vae.decode(vae.encode(x * 2 - 1).latents).sample + 1) / 2
        loss = ((recon - x) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), grad_clip)
        optimiser.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        done = step + 1
        if done % monitor_every == 0 or done == steps:
            psnr = reconstruction_psnr(vae, monitor, device_)
            log.append({"step": done, "loss": running, "lr": lr, "psnr_monitor": psnr,
                        "seconds": time.perf_counter() - began})
            progress.set_postfix(loss=f"{running:.5f}", psnr=f"{psnr:.2f}")
            print(f"step {done}: loss {running:.6f}, monitor PSNR {psnr:.2f} dB", flush=True)
        if done % checkpoint_every == 0 or done == steps:
            save_checkpoint(done)
    return pd.DataFrame(log)


# ----------------------------------------------------------------------------- embedded restorers


def restorer_config(task: str) -> dict:
    """Architecture of the embedded MSE restorer of ``task`` (``dotlib.restorers.ResidualShuffleCNN``).

    8 convolutions of 48 features; the body runs at 1/4 of the clean resolution for the
    x4 tasks and at 1/2 (space-to-depth) for the scale-1 tasks: about 0.14 M parameters.
    Tasks with white noise get a Gaussian base blur of 1.5 pixels (of ``y``): the best
    fixed blur on 26 crops 128² of the ``train`` photos, for both ``awgn50`` (24.7 dB
    against 15.1 dB unblurred) and ``sr4_awgn50`` (20.4 dB against 15.6 dB). JPEG tasks
    get a chroma blur of 1.5 pixels: the best on the colour crops among those 26 for
    ``jpeg10`` (27.44 dB against 27.36 dB). The residual is high-passed above 8 pixels
    of the clean image (``residual_lowcut``), so the nets cannot shift colours.
    """
    from .degradations import JPEG, get_degradation

    degradation = get_degradation(task)
    scale = degradation.scale
    jpeg = any(isinstance(step, JPEG) for step in degradation.steps)
    return dict(scale=scale, body_factor=4 if scale == 4 else 2, channels=48, depth=8,
                base_blur=1.5 if degradation.noise_sigma is not None else 0.0,
                chroma_blur=1.5 if jpeg else 0.0, residual_lowcut=8.0)


def _restorer_psnr(net, images: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Mean PSNR (dB) of ``clip(net(y))`` against ``images``, one image at a time."""
    from .metrics import psnr

    net.eval()
    with torch.no_grad():
        restored = torch.cat([net(image[None].to(device)).clamp(0, 1).cpu() for image in y])
    net.train()
    return float(psnr(restored, images).mean())


def _resume_restorer(checkpoint_path: Path, task: str, net, optimiser, photos: TrainingPhotos,
                     device: torch.device) -> tuple[int, list[dict]]:
    """Load the checkpoint of a restorer run into ``net``, ``optimiser`` and the crops' generator.

    Returns the step reached and the log so far, ``(0, [])`` when ``checkpoint_path`` does
    not exist yet; a checkpoint of another task is refused.
    """
    if not checkpoint_path.is_file():
        return 0, []
    state = torch.load(checkpoint_path, map_location=device, weights_only=False)
    if state.get("task") != task:
        raise ValueError(f"checkpoint {checkpoint_path} belongs to task {state.get('task')!r}, not {task!r}")
    net.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    photos.generator.set_state(state["generator"])
    start, log = state["step"], state["log"]
    print(f"{task}: resuming from step {start} ({checkpoint_path})")
    return start, log


def _restorer_step(net, optimiser, photos: TrainingPhotos, degradation, batch_size: int, batch_seed: int,
                   device: torch.device) -> torch.Tensor:
    """One Adam step of the MSE restorer; returns the batch's loss.

    The batch: ``batch_size`` crops of ``photos``, each with its colour channels permuted,
    degraded with seed ``batch_seed`` (which also draws the permutations).
    """
    x = photos.batch(batch_size)
    colours = torch.Generator().manual_seed(batch_seed)
    x = torch.stack([crop[torch.randperm(3, generator=colours)] for crop in x])
    y = degradation(x, seed=batch_seed).to(device)
    loss = ((net(y) - x.to(device)) ** 2).mean()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss


def train_restorer(
    task: str,
    output_path: str | Path,
    checkpoint_path: str | Path,
    steps: int = 1500,
    batch_size: int = 16,
    crop: int | None = None,
    learning_rate: float = 4e-3,
    warmup: int = 20,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_every: int = 50,
    monitor_every: int = 50,
    monitor_split: str = "target",
    config: dict | None = None,
) -> pd.DataFrame:
    """Train (or resume) the embedded MSE restorer of ``task`` and save it to ``output_path``.

    ``config`` (keyword arguments of ``ResidualShuffleCNN``) defaults to :func:`restorer_config`.

    Clean crops come from the ``train`` photos only (:class:`TrainingPhotos`: three
    scales, flips, 90° turns, plus here a random permutation of the colour channels,
    so that no hue of the few training photos becomes a prior); each batch is degraded
    with seed ``seed * 1_000_003 + step``,
    so a resumed run sees the same data as an uninterrupted one. Loss: mean squared
    error in [0, 1] of the unclipped output, i.e. the network approximates E[x | y].
    Adam with linear warm-up then cosine decay (as :func:`train_vae`). ``crop`` defaults
    to 128 for x4 tasks (32² low-resolution inputs) and 64 otherwise. Every
    ``monitor_every`` steps the PSNR on four 256² crops of ``monitor_split`` (never
    trained on) is logged. The weights are written as safetensors with metadata (task,
    architecture, steps) at every checkpoint and at the end. Returns the log with
    columns ``step, loss, lr, psnr_monitor, seconds``.
    """
    from .degradations import get_degradation
    from .restorers import ResidualShuffleCNN, save_mse_net

    degradation = get_degradation(task)
    crop = crop if crop is not None else (128 if degradation.scale > 1 else 64)
    if crop % degradation.scale:
        raise ValueError(f"crop ({crop}) must be a multiple of the task scale ({degradation.scale})")
    device_ = torch.device(device)
    checkpoint_path, output_path = Path(checkpoint_path), Path(output_path)
    torch.manual_seed(seed)
    net = ResidualShuffleCNN(**(config if config is not None else restorer_config(task))).to(device_)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    photos = TrainingPhotos(crop, seed)
    monitor = crop_batch([load_photo(n) for n in split_photos(monitor_split)], 256, 4, seed=1234)
    monitor_y = degradation(monitor, seed=1234)
    start, log = _resume_restorer(checkpoint_path, task, net, optimiser, photos, device_)

    def save(step: int) -> None:
        with atomic_path(checkpoint_path) as temporary:
            torch.save({"task": task, "model": net.state_dict(), "optimiser": optimiser.state_dict(),
                        "generator": photos.generator.get_state(), "step": step, "log": log}, temporary)
        save_mse_net(net, output_path, task, steps=str(step), seed=str(seed), train_split="train",
                     crop=str(crop), batch_size=str(batch_size))

    if start >= steps:
        save(start)
        return pd.DataFrame(log)
    net.train()
    began = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)
    running = None
    progress = progress_bar(range(start, steps), initial=start, total=steps, desc=f"restorer {task}",
                            unit="step", mininterval=30)
    for step in progress:
        lr = _set_learning_rate(optimiser, step, steps, learning_rate, warmup)
        loss = _restorer_step(net, optimiser, photos, degradation, batch_size, seed * 1_000_003 + step, device_)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        done = step + 1
        if done % monitor_every == 0 or done == steps:
            value = _restorer_psnr(net, monitor, monitor_y, device_)
            log.append({"step": done, "loss": running, "lr": lr, "psnr_monitor": value,
                        "seconds": time.perf_counter() - began})
            progress.set_postfix(loss=f"{running:.5f}", psnr=f"{value:.2f}")
            print(f"{task} step {done}: loss {running:.6f}, monitor PSNR {value:.2f} dB", flush=True)
        if done % checkpoint_every == 0 or done == steps:
            save(done)
    return pd.DataFrame(log)


def compare_restorers(task: str, names: list[str], images: torch.Tensor, seed: int = 0,
                      device: str = "cpu", options: dict[str, dict] | None = None) -> pd.DataFrame:
    """PSNR (dB) of restorers ``names`` on ``images [B, 3, H, W]`` degraded by ``task`` with ``seed``.

    ``options[name]`` are passed to ``get_restorer`` (e.g. ``{"mse_net": {"checkpoint": path}}``).
    Returns one row per restorer: ``task, restorer, n_images, psnr, psnr_sd`` (mean and
    standard deviation over images).
    """
    from .degradations import degrade
    from .metrics import psnr
    from .restorers import get_restorer

    y = degrade(task, images, seed)
    rows = []
    for name in names:
        restorer = get_restorer(name, task, device, **(options or {}).get(name, {}))
        values = psnr(restorer(y).cpu(), images)
        rows.append({"task": task, "restorer": name, "n_images": len(images),
                     "psnr": float(values.mean()), "psnr_sd": float(values.std())})
    return pd.DataFrame(rows)


__all__ += ["compare_restorers", "restorer_config", "train_restorer"]
