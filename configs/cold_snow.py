"""Snowification (Cold Diffusion, Bansal et al. 2022; ImageNet-C-style snow), not cumulative.

    python train.py --config=configs/cold_snow.py             # embedded photos: 16×16 RGB crops, no download
    python train.py --config=configs/cold_snow.py:cifar10     # published CIFAR-10 level, T=200
    python train.py --config=configs/cold_snow.py:celeb_a

x̃ = (x0+1)/2, F_t = clip(x̃ + S_t + rot180(S_t), 0, 1)·2 − 1, S_t a fixed random snow layer (drawn once from
``seed``) thresholded at thr_t (thr_start → thr_end) and motion-blurred with σ_t (sigma_start → sigma_end).
Color only, like decolor: the default trains on the ``photos`` source (crops of scikit-learn's sample
photographs); the grey ``mnist`` variant is refused by ``validate_config`` (data.channels must be 3).
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

T = 200
PARAMS = dict(seed=0, thr_start=1.15, thr_end=0.70, sigma_start=0.05, sigma_end=16.0)  # the CIFAR-10 snow level


def get_config(variant: str = ""):
    return _common["cold_config"]("cold_snow", variant, degradation="snow", T=T, params=PARAMS,
                                  default="photos")
