"""Inpainting (Cold Diffusion, Bansal et al. 2022): F_t multiplies x0 by a growing Gaussian-hole mask.

    python train.py --config=configs/cold_inpaint.py           # digits 16x16 (embedded)
    python train.py --config=configs/cold_inpaint.py:mnist     # the published settings below

F_t(x0) = x0 ⊙ ∏_{i<t} m_i, m_i = 1 − G_i / max G_i, G_i a Gaussian bump of std kernel_std·(i + initial_mask),
centred or at a random centre per image (fixed across t); masked pixels become 0.
Published: MNIST / CIFAR-10 T=50, random centre, kernel_std 0.1, initial_mask 11;
CelebA 128 T=100, centred, kernel_std 0.2, initial_mask 1. Sampling: Algorithm 2 (``cold_improved``).
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

SETTINGS = {
    # digits, 16x16: MNIST's 50 masks of std 0.1·(i + 11) px cover the whole image by t = T (nothing left to
    # restore); 20 masks of std 0.1·(i + 5) px hide about a quarter of it, at a random place per image.
    "": (20, dict(kernel_std=0.1, initial_mask=5, centered=False)),
    "mnist": (50, dict(kernel_std=0.1, initial_mask=11, centered=False)),
    "cifar10": (50, dict(kernel_std=0.1, initial_mask=11, centered=False)),
    "celeb_a": (100, dict(kernel_std=0.2, initial_mask=1, centered=True)),
}


def get_config(variant: str = ""):
    T, params = SETTINGS.get(variant, (None, None))
    return _common["cold_config"]("cold_inpaint", variant, degradation="inpaint", T=T, params=params or {})
