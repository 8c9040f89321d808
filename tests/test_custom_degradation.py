"""A degradation with a generation prior, added in this file alone: registered, trained for a step, its prior
fitted through jaxdiff.priors.store and sampled from — no library file knows its name."""
import pathlib
import re
import runpy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdiff import degradations, sampling
from jaxdiff.data import load_images, to_global_array
from jaxdiff.degradations import Degradation, GenerationPrior, register_degradation
from jaxdiff.experiment import build_model, build_process, make_mesh
from jaxdiff.priors import store

from jaxdiff.train.step import init_train_state, make_train_step

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINT = (-0.25, 0.25)  # the range of the tint a test degradation ends at


def tint(*, T, image_size, channels):
    """x_t = (1 − t/T)·x0 + (t/T)·c, c ~ U(TINT)^C per example (aux): F_T is the solid color c."""

    def apply(x0, t, aux=None):
        s = (t.astype(jnp.float32) / T)[:, None, None, None]
        return (1 - s) * x0 + s * aux

    def sample_aux(key, x0):
        return jax.random.uniform(key, (x0.shape[0], 1, 1, x0.shape[-1]), x0.dtype, *TINT)

    generation = GenerationPrior(kind="color", fit_on="none", fit_params={"low": TINT[0], "high": TINT[1]},
                                 aux=lambda x_T, key: jnp.mean(x_T, axis=(1, 2), keepdims=True))
    return Degradation(name="test_tint", T=T, apply=apply, sample_aux=sample_aux, generation=generation)


def flatten(*, T, image_size, channels):
    """x_t = x0 + (t/T)·(m − x0), m the per-channel spatial mean: F_T is flat, a fitted prior on m generates."""

    def means(x):
        return jnp.broadcast_to(jnp.mean(x, axis=(1, 2), keepdims=True), x.shape)

    def apply(x0, t, aux=None):
        s = (t.astype(jnp.float32) / T)[:, None, None, None]
        return x0 + s * (means(x0) - x0)

    end_state = lambda images: np.asarray(means(jnp.asarray(images)), np.float64)  # noqa: E731
    generation = GenerationPrior(kind="blur_mean", fit_on="source", prior_noise=True, end_state=end_state)
    return Degradation(name="test_flatten", T=T, apply=apply, generation=generation)


def _tiny_config(name):
    c = runpy.run_path(str(ROOT / "configs" / "default.py"))["get_config"]()
    c.diffusion.degradation = name
    c.diffusion.T = 4
    c.diffusion.degradation_params = ml_collections.ConfigDict({})
    c.data.image_size = 8
    c.model.ch = 8
    c.model.ch_mult = (1,)
    c.train.batch_size = 8
    c.train.warmup_steps = 1
    c.sample.prior_noise = 0.0
    return c


@pytest.mark.parametrize("name, builder", [("test_tint", tint), ("test_flatten", flatten)])
def test_a_degradation_defined_here_trains_and_generates(name, builder):
    register_degradation(name)(builder)
    try:
        config = _tiny_config(name)
        process = build_process(config)
        assert process.degradation.describe() == f"{name}(), T=4"
        assert process.can_generate
        mesh = make_mesh()
        model = build_model(config)
        state = init_train_state(config, model, mesh=mesh)
        step = make_train_step(config, model, process, mesh=mesh)
        x0 = load_images(config, split="train", num=8, seed=0)
        state, metrics = step(state, to_global_array(x0, mesh), 0)
        assert np.isfinite(float(metrics["loss"])) and float(metrics["skipped"]) == 0

        prior = store.fit_prior_for_run(config, process, max_images=256)
        key = jax.random.PRNGKey(0)
        x_T = prior.sample(key, 8)
        aux = process.generation_aux(x_T, jax.random.PRNGKey(1))
        assert x_T.shape == (8, 8, 8, 1)
        c = np.asarray(x_T, np.float64).mean(axis=(1, 2))  # (8, 1): the per-channel color of each draw
        np.testing.assert_array_equal(np.asarray(x_T), np.broadcast_to(np.asarray(x_T)[:, :1, :1], x_T.shape))  # flat
        if name == "test_tint":
            assert prior.kind == "color" and TINT[0] <= c.min() and c.max() <= TINT[1]
            # the aux read from x_T is the color the degradation ends at: F_T(anything; aux) = x_T
            np.testing.assert_allclose(process.mean(jnp.asarray(x0), 4, aux), x_T, atol=1e-6)
        else:
            assert prior.kind == "blur_mean" and aux is None
            data = load_images(config, split="train", num=256, seed=int(config.seed)).astype(np.float64)
            data = data.mean(axis=(1, 2))
            np.testing.assert_allclose(prior.arrays["means"][0], data.mean(0), rtol=1e-6)  # fitted on the images' m
            assert abs(c.mean() - data.mean()) < 5 * data.std() / np.sqrt(8) + 1e-6

        def denoiser(params, x, t):
            return model.apply({"params": params}, x, t, train=False)

        out = sampling.sample(denoiser, state.ema_params, jax.random.PRNGKey(2), x_T, process=process,
                              corrector="cold_improved", prediction="x0", clip=1.0, aux=aux)
        assert out.x0.shape == (8, 8, 8, 1) and bool(jnp.all(jnp.isfinite(out.x0)))
        assert float(jnp.max(jnp.abs(out.x0))) <= 1.0
    finally:
        degradations.DEGRADATIONS.unregister(name)
    assert name not in degradations.DEGRADATIONS


def test_a_restoration_only_degradation_defined_here_refuses_generation():
    register_degradation("test_negate")(lambda *, T, **_: (lambda x0, t: x0 * (1 - 2 * t[:, None, None, None] / T)))
    try:
        process = build_process(_tiny_config("test_negate"))
        assert not process.can_generate
        with pytest.raises(ValueError, match="'test_negate' has no generation prior.*--mode=restore"):
            process.generation().kind
    finally:
        degradations.DEGRADATIONS.unregister("test_negate")


def test_readme_degradation_with_a_generation_prior():
    """The README's "Adding a degradation" example with a generation prior runs as written."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    example = [b for b in blocks if "GenerationPrior" in b]
    assert len(example) == 1
    ns = {}
    exec(compile(example[0], "README:generation", "exec"), ns)
    try:
        assert not degradations.DEGRADATIONS["tint"].color_only
        deg = degradations.make_degradation("tint", T=10, image_size=8, channels=3)
        x0 = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 3), minval=-1, maxval=1)
        aux = deg.sample_aux(jax.random.PRNGKey(1), x0)
        assert aux.shape == (4, 1, 1, 3) and float(jnp.abs(aux).max()) <= 0.5
        out = deg.apply(x0, jnp.array([0, 3, 5, 10]), aux)
        np.testing.assert_array_equal(out[0], x0[0])  # F_0 = identity
        np.testing.assert_allclose(out[3], jnp.broadcast_to(aux[3], (8, 8, 3)), atol=1e-6)  # F_T = the color
        process = build_process(_tiny_config("tint"))
        assert process.generation().kind == "color"
        prior = store.fit_prior_for_run(_tiny_config("tint"), process)
        x_T = prior.sample(jax.random.PRNGKey(2), 4)
        np.testing.assert_allclose(process.generation_aux(x_T, jax.random.PRNGKey(3)), x_T[:, :1, :1], atol=1e-6)
    finally:
        degradations.DEGRADATIONS.unregister("tint")
