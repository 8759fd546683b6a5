"""The authors' conventions against dotlib's, one row each, as README's convention table shows them.

Each row names a convention, what the authors' code does (``theoad/dot-dmax`` at commit
``2ea7ce7``: ``dmax/data``, ``dmax/main.py``, ``LatentW2``), what dotlib does by default, and
where ``studies/paper.yaml`` stands: ``same`` (it runs the authors' way), ``option`` (a named
parameter selects the authors' way; the paper study sets it) or ``different, because …``.
README's table is :func:`conventions_markdown` verbatim (a test keeps them equal), so the
table changes only with this file.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CONVENTIONS", "Convention", "conventions_markdown"]


class Convention(NamedTuple):
    name: str
    authors: str
    dotlib: str
    paper_study: str   # "same", "option: <parameter>" or "different, because ..."


CONVENTIONS: tuple[Convention, ...] = (
    Convention("clean image x", "centre square of the short side, bilinear resize to 512² without antialias",
               "short side to the size by antialiased bicubic, centre crop", "option: protocol: authors"),
    Convention("SR ×4 degradation", "antialiased bilinear ×4 down", "bicubic ×4 down", "option: protocol: authors"),
    Convention("JPEG q=10", "torchvision's encoder on (x·255).byte(), truncated", "Pillow's encoder on rounded pixels",
               "option: protocol: authors"),
    Convention("AWGN σ=50", "σ/255 added to x, unclipped", "the same", "same"),
    Convention("fitting images", "16 ImageNet train images, the same for target and source",
               "the first n_fit of the evaluated folder (shuffled), excluded from evaluation",
               "option: fit_data (a separate folder), fit_split: same"),
    Convention("evaluated images", "every ImageNet val image (50 000)", "every image not fitted (max_eval caps it)",
               "same"),
    Convention("PSNR of a set", "torchmetrics: the MSE pooled over the set, in dB", "the same (psnr; psnr_mean is "
               "the mean of per-image PSNRs)", "same"),
    Convention("ridge", "absolute, 1e-7", "relative, 1e-9 of the mean eigenvalue", "option: ridge: absolute, eps: 1e-7"),
    Convention("latents", "sampled from the VAE posterior", "the posterior mean", "option: latent: sample"),
    Convention("transport at borders", "replicate-padded patches", "valid patches, weighted folding",
               "option: border: replicate"),
    Convention("x̂0 before the α mix", "unclipped", "clipped to [0, 1]", "option: clip_x_hat0: false"),
    Convention("FID, KID, IS", "torchmetrics (TensorFlow Inception)", "clean-fid, clean mode",
               "option: fid_mode: legacy_tensorflow (clean-fid's port of the same Inception, not torchmetrics' code)"),
    Convention("restorers", "whole image, the batch at once",
               "256-px blended tiles on larger inputs (JPEG, AWGN at 512²), one image at a time",
               "option: protocol: authors (whole batches; 256-px tiles only for a batch that does not fit in "
               "device memory, counted in the run's description)"),
    Convention("x* where it is encoded and mixed", "left unclipped (clipped where it is measured)",
               "clamped to [0, 1]", "option: clip_x_star: false"),
    Convention("y row of the table", "upsampled bilinear", "upsampled bicubic", "option: protocol: authors"),
    Convention("DDRM row", "precomputed clean images, inputs and outputs (σ 25, though the poster says σ = 50); "
               "the first 200 images alternately target and source, every image evaluated, x̂0 clipped, "
               "α from 1 to 0",
               "precomputed outputs read from a folder; y made from x",
               "option: degraded_data, fit_data, n_fit: 100, fit_split: disjoint, fit_order: alternating, "
               "clip_x_hat0: true, alpha_start: 0.0 (the step sr4_awgn50_ddrm: fit_data is data, the first 200 "
               "images by name alternately target and source, α from 0 to 1 by 0.1)"),
    Convention("NLM colour-denoising row", "their own global non-local means on 32-px tiles (overlap 1/4, h² = 2, "
               "Euclidean distances)", "skimage's NLM (restorer nlm)",
               "option: restorer: global_nlm (the step awgn50_global_nlm)"),
    Convention("Swin2SR row", "DIV2K validation images with the release's compressed ×4 inputs",
               "ImageNet degraded by dotlib (SR ×4 + JPEG)",
               "option: degraded_data (the step sr4_jpeg10_swin2sr, on DIV2K; its 16 fitting images come from "
               "the same folder and are not evaluated, as their code does not say which fitted this row)"),
    Convention("perception indices SWD and detail", "absent", "dotlib's additions (weight-free)",
               "different, because they are this study's additions"),
)


def conventions_markdown() -> str:
    """:data:`CONVENTIONS` as a Markdown table."""
    lines = ["| convention | the authors | dotlib's default | `studies/paper.yaml` |", "| --- | --- | --- | --- |"]
    lines += [f"| {row.name} | {row.authors} | {row.dotlib} | {row.paper_study} |" for row in CONVENTIONS]
    return "\n".join(lines) + "\n"
