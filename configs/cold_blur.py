"""Deblurring (Cold Diffusion, Bansal et al. 2022): F_t is a cumulative Gaussian blur, R(F_t(x0), t) ≈ x0.

    python train.py --config=configs/cold_blur.py           # digits 16x16 (embedded), minutes on a CPU
    python train.py --config=configs/cold_blur.py:mnist     # the published settings below
    python train.py --config=configs/cold_blur.py:cifar10
    python train.py --config=configs/cold_blur.py:celeb_a

Published (their README / paper): MNIST 32x32 T=20, Constant routine, 11x11, σ=7 (circular padding);
CIFAR-10 T=50, 11x11, σ_i = 0.35 + i/100, reflect; CelebA 128 T=200, Exponential σ_i = exp(0.01 i),
15x15, reflect. Sampling: their Algorithm 2 (``cold_improved``) over every step.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

#: variant -> (T, degradation params)
SETTINGS = {
    # digits are 8x8 scans upsampled to 16x16. The MNIST operator (11x11, σ 7) flattens them to their mean
    # long before t = T, which leaves nothing to restore; 20 steps of a 5x5, σ 0.5 kernel compose to a blur
    # of about 2 px (the size of a stroke): hard to read, still restorable.
    "": (20, dict(kernel_size=5, std=0.5, routine="constant", padding="circular")),
    "mnist": (20, dict(kernel_size=11, std=7.0, routine="constant", padding="circular")),
    "cifar10": (50, dict(kernel_size=11, std=0.35, std_increment=0.01, routine="affine", padding="reflect")),
    "celeb_a": (200, dict(kernel_size=15, std=0.01, routine="exponential", padding="reflect")),
}


def get_config(variant: str = ""):
    T, params = SETTINGS.get(variant, (None, None))
    return _common["cold_config"]("cold_blur", variant, degradation="blur", T=T, params=params or {})
