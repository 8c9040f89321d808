"""Class-conditional DDIM on digits with classifier-free guidance (Ho & Salimans 2022).

    python train.py --config=configs/ddim_cond.py --workdir=workdirs/ddim_cond
    python sample.py --workdir=workdirs/ddim_cond --labels=0-9          # one row per digit, guidance w from below
    python sample.py --workdir=workdirs/ddim_cond --label=3 --guidance=1

configs/ddim.py's digits run (offset-cosine schedule, T=1000, ε-prediction, L1, 20 deterministic DDIM steps)
(2000 training steps) with a label embedding for the 10 digits (model.num_classes=10), the label dropped to the null label with
probability 0.1 during training, and guided sampling at sample.guidance = 0.5 with x̂0 unclipped
(docs/EVALUATION.md has the sweep over w and why clipping is off).
"""
import pathlib
import runpy

_ddim = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("ddim.py")))


def get_config(variant: str = ""):
    c = _ddim["get_config"](variant)
    c.model.num_classes = 10
    if not variant:
        c.train.num_steps = 2000  # under ten minutes on two idle CPU cores
    c.train.label_dropout = 0.1
    c.sample.guidance = 0.5
    # x̂0 unclipped: clipping ε-prediction's x̂0 while DDIM keeps the network's (guided) ε breaks guidance at w ≥ 1
    c.sample.clip = 0.0
    return c
