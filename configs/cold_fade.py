"""Generation by fading to a solid color (Cold Diffusion, Bansal et al. 2022: inpainting-based generation).

    python train.py --config=configs/cold_fade.py            # digits 16x16 (embedded)
    python sample.py --workdir=workdirs/cold_fade            # generate from a random solid color

x_t = M_t ⊙ x0 + (1 − M_t) ⊙ c: the inpainting masks M_t grow from the centre until M_T = 0, c a solid color
per example and channel, c ~ U(−0.5, 0.5). F_T is exactly the color image, so the prior (a random color) is
exact and needs no fit. Sampling: Algorithm 2 (``cold_improved``). The masks' std kernel_std·(i + initial_mask)
reaches 0.5·(20 + 1) ≈ 10 px at t = T on the 16x16 digits, so the image fades out gradually instead of in
one last jump; on 32x32 and 128x128 data the std scales with the side.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

#: variant -> (T, degradation params)
SETTINGS = {
    "": (20, dict(kernel_std=0.5, initial_mask=1.0, centered=True)),
    "mnist": (50, dict(kernel_std=0.4, initial_mask=1.0, centered=True)),
    "cifar10": (50, dict(kernel_std=0.4, initial_mask=1.0, centered=True)),
    "celeb_a": (100, dict(kernel_std=1.0, initial_mask=1.0, centered=True)),
}


def get_config(variant: str = ""):
    T, params = SETTINGS.get(variant, (None, None))
    return _common["cold_config"]("cold_fade", variant, degradation="fade", T=T, params=params or {})
