"""docs/ARCHITECTURE.md stays true: its process table against every config, and its "Adding a process" example
run as written (a new schedule registered, a config using it validated, trained two steps and sampled)."""
import os
import re
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md"), encoding="utf-8").read()


def _table_rows():
    section = DOC.split("## The process of every config", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    out = []
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cells[0])
        out.append((names, cells))
    return out


def _listed(cell):
    """'a, b, c (`own`)' → (['a', 'b', 'c'], 'own')."""
    m = re.match(r"(.*?)\s*\(`(\w+)`\)$", cell)
    return [x.strip() for x in m.group(1).split(",")], m.group(2)


def test_the_process_table_covers_every_config_and_says_what_each_process_answers():
    from jaxdiff import sampling
    from jaxdiff.processes import build_process

    rows = _table_rows()
    named = [n for names, _ in rows for n in names]
    configs = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py")
                     and not f.startswith("_"))
    assert sorted(named) == configs
    for names, cells in rows:
        degradations = [d.strip() for d in cells[1].split(",")]
        for i, name in enumerate(names):
            c = runpy.run_path(os.path.join(ROOT, "configs", f"{name}.py"))["get_config"]()
            p = build_process(c)
            assert c.diffusion.degradation == degradations[min(i, len(degradations) - 1)], name
            assert cells[2].split()[0] == c.diffusion.schedule, name
            preds, own = _listed(cells[3])
            assert tuple(preds) == p.predictions and own == c.diffusion.prediction, name
            corrs, own = _listed(cells[4])
            applies = [k for k, v in sampling.CORRECTORS.items() if v.name == k and v.applies(p) is None]
            assert corrs == applies and own == c.sample.corrector, name
            prior = cells[5].split()[0]
            assert (prior == "—") == (not p.can_generate), name
            if p.can_generate:
                assert prior == p.generation().kind, name


@pytest.fixture()
def trig_registered():
    from jaxdiff.processes.schedules import SCHEDULES

    code = DOC.split("## Adding a process", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/ARCHITECTURE.md", "exec"), namespace)  # noqa: S102 - the doc's own example
    try:
        yield namespace
    finally:
        SCHEDULES.unregister("trig")


def test_adding_a_process_as_the_doc_says(trig_registered):
    from jaxdiff import sampling
    from jaxdiff.config import validate_config
    from jaxdiff.config.files import default_config
    from jaxdiff.experiment import build_model, make_mesh
    from jaxdiff.processes import build_process
    from jaxdiff.train.step import init_train_state, make_train_step

    c = default_config()
    c.diffusion.T, c.diffusion.degradation, c.diffusion.schedule = 50, "dct_blur", "trig"
    c.diffusion.degradation_params, c.diffusion.schedule_params = {"sigma_max": 4.0, "d_min": 0.01}, {}
    c.diffusion.prediction, c.diffusion.loss = "v", "l2"
    c.sample.corrector, c.sample.steps = "ddim", 5
    c.model.ch, c.model.ch_mult, c.model.num_groups = 8, (1,), 4
    c.data.image_size, c.train.batch_size = 8, 8
    validate_config(c, num_devices=8)
    p = build_process(c)
    # it answers for itself, as the doc says
    tau = 0.999 * np.arange(51) / 50
    np.testing.assert_allclose(p.signal(np.arange(51)), np.cos(np.pi * tau / 2), rtol=1e-6)
    assert p.predictions == ("eps", "x0", "v", "velocity")
    assert p.noise_dominates and p.generation().kind == "gaussian"
    assert p.describe().startswith("dct_blur(") and "trig(end=0.999), T=50" in p.describe()
    applies = {k for k, v in sampling.CORRECTORS.items() if v.name == k and v.applies(p) is None}
    assert applies == {"ddim", "ddpm", "cold_naive", "ddim_2m"}
    # train two steps and sample with the one step and with the posterior
    mesh = make_mesh(jax.devices()[:1])
    model = build_model(c)
    state = init_train_state(c, model, mesh=mesh)
    step = make_train_step(c, model, p, mesh=mesh)
    x0 = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1), minval=-1, maxval=1)
    losses = []
    for i in range(2):
        state, m = step(state, x0, jnp.int32(i))
        losses.append(float(m["loss"]))
    assert all(np.isfinite(losses))

    def den(params, x, t):
        return model.apply({"params": params}, x, t, train=False)

    x_T = p.prior(jax.random.key(1), (4, 8, 8, 1))
    for corrector in ("ddim", "ddpm"):
        out = sampling.sample(den, state.ema_params, jax.random.key(2), x_T, process=p, corrector=corrector,
                              timesteps=5, prediction="v", clip=1.0).x0
        assert out.shape == x_T.shape and bool(jnp.all(jnp.abs(out) <= 1.0))
