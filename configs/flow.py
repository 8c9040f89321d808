"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023) on the one process.

    python train.py --config=configs/flow.py            # digits 16x16 (embedded), default.py's small UNet
    python sample.py --workdir=workdirs/flow            # 20 Euler steps from x_T ~ N(0, I)
    python sample.py --workdir=workdirs/flow --corrector=heun --steps=10

x_t = (1 − τ)·x0 + τ·ε with τ = t/T (D = identity, schedule ``flow``), T = 1000 discrete levels as diffusers'
FlowMatchEulerDiscreteScheduler trains; the network predicts the velocity u = dx_t/dτ = ε − x0 (prediction
``velocity``) with a mean-squared error. Sampling integrates dx/dτ = u from τ = 1 to 0: ``euler`` (which on this
process is the one reverse step ``ddim``) or ``heun`` (2N − 1 network calls), x̂0 clipped to [−1, 1].
Training draws t from the logit-normal density (Stable Diffusion 3's choice: τ = sigmoid(n), n ~ N(0, 1)),
which weights the middle of the path; on digits after 1000 steps it beats uniform t by 20 % in Fréchet at 20
Euler steps (paired over 4 prior keys: docs/EVALUATION.md, the flow rows). Uniform t:
``--config.diffusion.t_sampling=uniform``. Fewer calls: ``--corrector=dpmpp_2m --steps=10`` matches 20 Euler steps.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))


def get_config(variant: str = ""):
    return _common["process_config"]("flow", variant, degradation="identity", schedule="flow",
                                     schedule_params={"shift": 1.0}, prediction="velocity", loss="l2",
                                     t_sampling="logit_normal", corrector="euler", steps=20, clip=1.0)
