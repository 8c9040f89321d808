"""Super-resolution (Cold Diffusion, Bansal et al. 2022): F_t shows x0 at resolution N / 2**t.

    python train.py --config=configs/cold_superres.py           # digits 16x16 → 2x2 (embedded)
    python train.py --config=configs/cold_superres.py:mnist     # the published settings below

Step i shows the image at N/2^(i+1) (downsampled, then upsampled with nearest neighbours and stored at
full size), so T <= log2(N). Published: MNIST / CIFAR-10 T=3 (32 → 4), CelebA 128 T=4 (128 → 8).
``method`` is the downsampling filter: ``bicubic`` as in their code (``area``: the exact 2x2 mean).
Sampling: Algorithm 2 (``cold_improved``).
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

SETTINGS = {
    # digits 16 → 4: two halvings (three would leave 2x2 pixels of an 8x8 scan, too little to restore from).
    "": (2, dict(method="area")),
    "mnist": (3, dict(method="bicubic")),
    "cifar10": (3, dict(method="bicubic")),
    "celeb_a": (4, dict(method="bicubic")),
}


def get_config(variant: str = ""):
    T, params = SETTINGS.get(variant, (None, None))
    return _common["cold_config"]("cold_superres", variant, degradation="superres", T=T, params=params or {})
