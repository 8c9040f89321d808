"""Generation from blur (Cold Diffusion, Bansal et al. 2022, Sec. 5): blur to a flat image, then sample back.

    python train.py --config=configs/cold_blur_gen.py            # digits 16x16 (embedded)
    python sample.py --workdir=workdirs/cold_blur_gen            # generate: Algorithm 2 + broken symmetry
    python sample.py --workdir=workdirs/cold_blur_gen --corrector=cold_naive --prior_noise=0   # Alg. 1, perfect symmetry

F_t a cumulative Gaussian blur whose last step (t = T) replaces the image by its per-channel spatial mean
(``to_mean``), so F_T(x0) is flat and a density over the means stands in for it exactly. The prior: a Gaussian
fitted to the training images' per-channel means, plus N(0, prior_noise²) per pixel ("broken symmetry",
0.002 as published; 0 is "perfect symmetry"). Sampling: Algorithm 2 (``cold_improved``), which keeps that noise.
Published (CelebA/AFHQ 128x128): T = 300, Exponential σ_i = exp(0.01 i), 27x27, circular. Digits are 16x16 (1/8
of that side): a 7x7 kernel whose σ grows from 1 to 4 px over T = 40 steps flattens a digit gradually.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

#: variant -> (T, degradation params)
SETTINGS = {
    "": (40, dict(kernel_size=7, std=0.035, routine="exponential", padding="circular", to_mean=True)),
    "mnist": (100, dict(kernel_size=11, std=0.02, routine="exponential", padding="circular", to_mean=True)),
    "cifar10": (100, dict(kernel_size=11, std=0.02, routine="exponential", padding="circular", to_mean=True)),
    "celeb_a": (300, dict(kernel_size=27, std=0.01, routine="exponential", padding="circular", to_mean=True)),
}


def get_config(variant: str = ""):
    T, params = SETTINGS.get(variant, (None, None))
    return _common["cold_config"]("cold_blur_gen", variant, degradation="blur", T=T, params=params or {})
