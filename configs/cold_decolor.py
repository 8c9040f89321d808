"""Decolorization (Cold Diffusion, Bansal et al. 2022): F_t(x) = (1 − t/T)·x + (t/T)·gray(x); the model recolors.

    python train.py --config=configs/cold_decolor.py            # embedded photos: 16×16 RGB crops, no download
    python train.py --config=configs/cold_decolor.py:cifar10    # published T=20
    python train.py --config=configs/cold_decolor.py:celeb_a
    python train.py --config=configs/cold_decolor.py --config.data.source=npz:rgb.npz

Color only. The default trains on the ``photos`` source (crops of scikit-learn's sample photographs); on one
channel gray(x) = x and F_t would be the identity, so the grey ``mnist`` variant is refused by
``validate_config`` with a message naming data.channels.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

T = 20


def get_config(variant: str = ""):
    return _common["cold_config"]("cold_decolor", variant, degradation="decolor", T=T, params={}, default="photos")
