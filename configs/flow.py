"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023) on the one process.

    python train.py --config=configs/flow.py            # digits 16x16 (embedded), default.py's small UNet
    python sample.py --workdir=workdirs/flow            # 20 Euler steps from x_T ~ N(0, I)
    python sample.py --workdir=workdirs/flow --corrector=heun --steps=10

x_t = (1 − τ)·x0 + τ·ε with τ = t/T (D = identity, schedule ``flow``), T = 1000 discrete levels as diffusers'
FlowMatchEulerDiscreteScheduler trains; the network predicts the velocity u = dx_t/dτ = ε − x0 (prediction
``velocity``) with a mean-squared error. Sampling integrates dx/dτ = u from τ = 1 to 0: ``euler`` (which on this
process is the one reverse step ``ddim``) or ``heun`` (2N − 1 network calls), x̂0 clipped to [−1, 1].
Training draws t uniformly (``diffusion.t_sampling``: ``logit_normal`` is Stable Diffusion 3's choice).
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))


def get_config(variant: str = ""):
    _common["check_variant"]("flow", variant)
    c = _common["base_config"]()
    _common["set_data"](c, variant or "digits")
    f = c.diffusion
    f.T = 1000
    f.degradation, f.degradation_params = "identity", {}
    f.schedule, f.schedule_params = "flow", {"shift": 1.0}
    f.prediction = "velocity"
    f.loss = "l2"
    f.loss_weighting = "none"
    f.t_sampling, f.t_sampling_params = "uniform", {}
    s = c.sample
    s.corrector = "euler"
    s.steps = 20
    s.eta = 0.0
    s.clip = 1.0
    c.lock()
    return c
