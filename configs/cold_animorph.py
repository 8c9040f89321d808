"""Animorphosis (Cold Diffusion, Bansal et al. 2022): interpolation from x0 toward an image of a second data set.

    python train.py --config=configs/cold_animorph.py           # digits 0-4 → digits 5-9 (embedded)
    python train.py --config=configs/cold_animorph.py:mnist     # MNIST 0-4 → 5-9
    python train.py --config=configs/cold_animorph.py:cifar10   # CIFAR-10 cats → dogs
    python train.py --config=configs/cold_animorph.py:celeb_a   # CelebA faces ← AFHQ animals (as published)

x_t = √ᾱ_t x0 + √(1 − ᾱ_t) z, z an image of ``data.end_source`` (drawn per example, fixed across t), cosine ᾱ,
T=200 (published: AFHQ → CelebA at 128x128). Generation starts from z and runs Algorithm 2 (``cold_improved``),
which for an interpolation equals DDIM η=0. AFHQ is not in the tfds catalogue: the celeb_a variant reads it
from ``folder:data/afhq`` (its train/ and test/ directories; override with
--config.data.end_source=folder:<path>). No split is named in the source strings, so data.eval_split applies.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

T = 200
#: variant -> (data.source, data.end_source)
SOURCES = {
    "": ("digits:classes=0-4", "digits:classes=5-9"),
    "mnist": ("tfds:mnist:classes=0-4", "tfds:mnist:classes=5-9"),
    "cifar10": ("tfds:cifar10:classes=3", "tfds:cifar10:classes=5"),  # cat → dog, like AFHQ's animals
    "celeb_a": ("tfds:celeb_a", "folder:data/afhq"),  # folder:<path> reads <path>/<split> when it exists
}


def get_config(variant: str = ""):
    c = _common["cold_config"]("cold_animorph", variant, degradation="interpolate", T=T, params={})
    c.data.source, c.data.end_source = SOURCES[variant]
    return c  # the interpolation weights ᾱ_t are the degradation's own (cosine); the noise schedule is constant σ = 0
