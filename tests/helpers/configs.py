"""Tiny configs the end-to-end tests share: small enough to train in seconds on the CPU."""
import os
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_gaussian(*, corrector="ddim", model=None, **train):
    """configs/default.py as an 8×8 Gaussian run: D = identity, cosine schedule over T = 10, ε-prediction, L2, a
    one-level UNet of width 8 without attention (``model`` overrides its fields), and ``train`` fields."""
    c = runpy.run_path(os.path.join(ROOT, "configs", "default.py"))["get_config"]()
    c.data.image_size = 8
    c.diffusion.degradation, c.diffusion.degradation_params = "identity", {}
    c.diffusion.T, c.diffusion.schedule = 10, "cosine"
    c.diffusion.prediction, c.diffusion.loss = "eps", "l2"
    c.sample.corrector = corrector
    c.model.update({**dict(ch=8, ch_mult=(1,), attn_resolutions=(), num_groups=4, dropout=0.0), **(model or {})})
    if len(c.model.ch_mult) == 1:
        with c.unlocked():
            c.model.mid_attention = False
    c.train.update(dict(warmup_steps=0, **train))
    return c
