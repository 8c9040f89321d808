"""Decolorization (Cold Diffusion, Bansal et al. 2022): F_t(x) = (1 − t/T)·x + (t/T)·gray(x); the model recolors.

    python train.py --config=configs/cold_decolor.py:cifar10    # published T=20
    python train.py --config=configs/cold_decolor.py:celeb_a
    python train.py --config=configs/cold_decolor.py --config.data.source=npz:rgb.npz --config.data.channels=3

Color only. On one channel gray(x) = x and F_t would be the identity, so the grey data of the default
(embedded digits) and of the ``mnist`` variant are refused by ``validate_config`` with a message naming
data.channels; the default still loads so that an RGB source can be put in on the command line.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

T = 20


def get_config(variant: str = ""):
    return _common["cold_config"]("cold_decolor", variant, degradation="decolor", T=T, params={})
