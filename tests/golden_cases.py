"""What the golden-array test recomputes for every config in configs/ (issue 18: a refactor proves nothing moved).

For each config (its default variant, the model shrunk to a tiny UNet so the test stays fast; the process,
prediction, loss and sampler settings are the config's own):

* ``x_t``: the forward sample F_t(x0) + σ_t ε for fixed x0, t, ε (and the process's aux from a fixed key);
* ``losses``: the first three training losses of ``make_train_step`` from ``init_train_state`` (seed 0) on a
  fixed batch;
* ``sample/<corrector>``: a 10-step (or T-step when T < 10) sample from a fixed key, untrained parameters and a
  fixed x_T, for every corrector that applies to the process.

``tests/golden/make_goldens.py`` wrote ``tests/golden/configs.npz`` from main at 2e3b236, before the process
package replaced forward.py; ``tests/test_golden.py`` compares. Nothing here may change the arithmetic it
records: if an API it calls is renamed, call the new name for the same quantity.
"""
from __future__ import annotations

import pathlib
import runpy

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if not p.stem.startswith("_"))
BATCH = 8
TRAIN_STEPS = 3
SAMPLE_STEPS = 10
#: correctors by the names a stored config may hold (the golden file's keys)
GAUSSIAN_CORRECTORS = ("ddpm", "ddim", "dpmpp_2m", "euler", "heun")
BLURRING_CORRECTORS = ("blurring_ddpm", "blurring_ddim")
COLD_CORRECTORS = ("cold_naive", "cold_improved")


def tiny(config):
    """The config with a tiny UNet and batch (process and sampler fields untouched)."""
    c = config
    m = c.model
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_groups, m.dropout = 8, (1,), 1, (), 4, 0.0
    c.train.batch_size = BATCH
    c.train.warmup_steps = 0
    return c


#: config → the (dotted field, value) pairs the golden arrays were made with where its default changed since,
#: each a deliberate change: blurring_diffusion's default prediction became x0 (issue 20: ε does not generate
#: on digits), its stored arrays are the paper's ε-prediction
GOLDEN_OVERRIDES = {"blurring_diffusion": (("diffusion.prediction", "eps"),)}


def load_config(name: str):
    """The config's default variant, tiny (:func:`tiny`), with the fields of ``GOLDEN_OVERRIDES[name]``."""
    c = tiny(runpy.run_path(str(ROOT / "configs" / f"{name}.py"))["get_config"]())
    for field, value in GOLDEN_OVERRIDES.get(name, ()):
        *parents, leaf = field.split(".")
        node = c
        for part in parents:
            node = node[part]
        node[leaf] = value
    return c


def fixed_inputs(config):
    """x0, the end images (interpolation), labels, ε, t: fixed arrays of the config's shape."""
    s, c = int(config.data.image_size), int(config.data.channels)
    rng = np.random.default_rng(20261207)
    x0 = rng.uniform(-1, 1, (BATCH, s, s, c)).astype(np.float32)
    end = rng.uniform(-1, 1, (BATCH, s, s, c)).astype(np.float32)
    eps = rng.standard_normal((BATCH, s, s, c)).astype(np.float32)
    T = int(config.diffusion.T)
    t = np.linspace(1, T, BATCH).round().astype(np.int32)
    labels = (np.arange(BATCH) % 10).astype(np.int32)
    return x0, end, eps, t, labels


def process_family(config) -> str:
    """Which correctors the golden file holds for a config: "gaussian" (D = identity), "blurring" (the DCT blur
    with a noise schedule) or "cold" (a degradation with constant σ). Before the process package this was the
    config's ``diffusion.kind``."""
    f = config.diffusion
    if "kind" in f:
        return str(f.kind)
    if str(f.degradation) == "identity":
        return "gaussian"
    return "blurring" if str(f.degradation) == "dct_blur" else "cold"


def _correctors(kind: str):
    return {"gaussian": GAUSSIAN_CORRECTORS, "blurring": BLURRING_CORRECTORS, "cold": COLD_CORRECTORS}[kind]


def compute(name: str, *, build_process, make_model, init_train_state, make_train_step, sample, make_mesh,
            corrector_name=None):
    """The golden quantities of config ``name`` as a dict of NumPy arrays (keys as in the golden file).

    The callables are the package's (passed in so this file names every API it depends on once):
    build_process(config), make_model(config), init_train_state(config, model),
    make_train_step(config, model, process), jaxdiff.sampling.sample and make_mesh(devices) (training runs on a
    one-device mesh: it compiles several times faster than over 8 simulated devices); ``corrector_name(old)`` maps a stored
    corrector name to the one to call (identity by default).
    """
    config = load_config(name)
    kind = process_family(config)
    process = build_process(config)
    model = make_model(config)
    x0, end, eps, t, labels = fixed_inputs(config)
    uses_end = bool(config.data.get("end_source", ""))
    conditional = int(config.model.get("num_classes", 0)) > 0
    aux = jnp.asarray(end) if uses_end else process.sample_aux(jax.random.PRNGKey(7), jnp.asarray(x0))
    out = {"x_t": np.asarray(process.perturb(jnp.asarray(x0), jnp.asarray(t), jnp.asarray(eps), aux))}

    mesh = make_mesh(jax.devices()[:1])
    state = init_train_state(config, model, mesh=mesh)
    params = jax.tree.map(jnp.copy, state.params)  # untrained; the step donates the state's buffers
    step = make_train_step(config, model, process, mesh=mesh)
    batch = (jnp.asarray(x0), jnp.asarray(labels)) if conditional else jnp.asarray(x0)
    losses = []
    for i in range(TRAIN_STEPS):
        args = (state, batch, jnp.int32(i)) + ((jnp.asarray(end),) if uses_end else ())
        state, metrics = step(*args)
        losses.append(float(metrics["loss"]))
    out["losses"] = np.asarray(losses, np.float64)

    apply = model.apply

    def denoiser(p, x, tt):
        return apply({"params": p}, x, tt, train=False)

    T = int(config.diffusion.T)
    n = min(SAMPLE_STEPS, T)
    x_T = jax.random.normal(jax.random.PRNGKey(3), x0.shape, jnp.float32)
    if kind == "cold":  # restoration from the forward sample at T (a data-free prior is a fitted one)
        x_T = process.perturb(jnp.asarray(x0), jnp.full((BATCH,), T, jnp.int32), jnp.asarray(eps), aux)
    clip = float(config.sample.clip) or None
    runs = [(corr, corr, float(config.sample.eta)) for corr in _correctors(kind)]
    if kind != "cold":  # the stochastic (η > 0) branch of the ddim steps too
        runs += [(f"{c}_eta0.7", c, 0.7) for c in _correctors(kind) if c.endswith("ddim")]
    for key, corr, eta in runs:
        res = sample(denoiser, params, jax.random.PRNGKey(11), x_T, process=process,
                     corrector=(corrector_name or (lambda c: c))(corr), timesteps=n,
                     prediction=str(config.diffusion.prediction), clip=clip, eta=eta, aux=aux)
        out[f"sample/{key}"] = np.asarray(res.x0)
    return out
