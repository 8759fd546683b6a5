"""Image-quality metrics, one module per job.

``distortion`` (MSE, PSNR, SSIM, LPIPS), ``inception`` (clean-fid features, FID, KID, IS),
``sliced_wasserstein`` (SWD, Wasserstein of Laplacian patches), ``detail`` (Fréchet distance of grey
Laplacian-band patches), ``registry`` (one entry per metric: name, direction, display,
definition), ``paired`` (every metric of a signal with paired bootstrap intervals over
photos: the embedded study), ``streaming`` and ``streaming_evaluator`` (the same metrics
accumulated batch by batch with bounded memory, reduced across processes: paper scale),
``assets`` (weights on disk), ``inputs`` (input checks).

Distortion (paired, one value per image, ``float64 [B]``):
    :func:`mse`, :func:`psnr`, :func:`ssim` (Wang et al. 2004, exactly scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``), :class:`LPIPS` (VGG, Zhang et al.
    2018) when its weights are on disk.

Perception with weights (unpaired, one value per *set*):
    FID, KID and IS through clean-fid's "clean" pipeline (Parmar et al., CVPR 2022):
    images are quantised to ``uint8``, resized to 299x299 by PIL bicubic on float
    channels (``cleanfid.resize.build_resizer("clean")``) and fed in [0, 255] to a
    feature model by ``cleanfid.fid.get_batch_features``. :class:`CleanFeatures` runs
    that pipeline for ANY feature model: the torchscript Inception of
    :func:`load_inception` (missing weights raise :class:`MetricUnavailable` before any
    download is attempted) or an injected callable, which is how the tests exercise
    the very same code offline. :func:`fid` is the squared Fréchet (W2) distance of
    Gaussians fitted to the features (``dotlib.gaussian.w2``), :func:`kid` the unbiased
    polynomial-kernel MMD² over subsets (Bińkowski et al. 2018), :func:`inception_score`
    the split-wise exp(E KL(p(y|x) || p(y))) (Salimans et al. 2016).

Perception without weights (always available):
    :class:`SlicedWasserstein`, the sliced Wasserstein distance between 7x7 patches of
    the Laplacian pyramids of two image sets (Karras et al., "Progressive Growing of
    GANs", ICLR 2018, §5 and appendix D). It compares pixel-patch statistics of the
    outputs with those of natural images; it is NOT the latent W2 that DOT minimises.
    Use a content-matched reference (the clean evaluation images, as restoration papers
    compute FID against the ground truth, or disjoint tiles of the same photos).

Uncertainty: per-image metrics report the standard deviation over images; set-level
metrics report a bootstrap standard deviation over resampled images (fixed seed), KID
its standard deviation over subsets and IS over splits (as the paper's table).

Values are in raw units; how each is printed (KID and SWD ×10³) is in :mod:`.registry`.
"""

from .assets import MetricUnavailable
from .distortion import LPIPS, LPIPS_LIN_ENV, LPIPS_VGG_ENV, load_lpips, mse, psnr, ssim
from .inception import (FID_MODES, INCEPTION_ENV, INCEPTION_FILE, CleanFeatures, fid, inception_file,
                        inception_score, kid, load_inception)
from .sliced_wasserstein import SlicedWasserstein, SWDResult, laplacian_pyramid, swd
from .streaming_evaluator import StreamingEvaluator

__all__ = [
    "FID_MODES", "INCEPTION_ENV", "INCEPTION_FILE", "LPIPS", "LPIPS_LIN_ENV", "LPIPS_VGG_ENV",
    "CleanFeatures", "MetricUnavailable", "SWDResult", "SlicedWasserstein", "StreamingEvaluator", "fid",
    "inception_file", "inception_score", "kid", "laplacian_pyramid", "load_inception", "load_lpips", "mse", "psnr",
    "ssim", "swd",
]
