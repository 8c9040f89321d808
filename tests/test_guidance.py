"""Classifier-free guidance: the formula on the network output (ε, x0 and v alike) against float64 hand
computations, one batched forward pass of 2B rows, no recompilation for new labels or w, the CLI's flags."""
import os
import runpy
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import sampling
from jaxdiff.cli.options import ModeSettings, SampleOptions, UsageError
from jaxdiff.processes import GaussianProcess
from jaxdiff.sampling import guidance
from jaxdiff.sampling.loop import sample_loop_jit
from jaxdiff.processes.schedules import make_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, B, S = 4, 3, 4  # classes, batch, image size


class ToyModel:
    """o(x, t, c) = a_c · x + b_c + t / 1000 per pixel; counts its forward passes and their batch sizes."""

    num_classes = K

    def __init__(self):
        self.calls = []

    def apply(self, variables, x, t, labels=None, *, train=False):
        self.calls.append(x.shape[0])
        p = variables["params"]
        lab = jnp.full((x.shape[0],), K, jnp.int32) if labels is None else labels
        a, b = p["a"][lab][:, None, None, None], p["b"][lab][:, None, None, None]
        return a * x + b + t[:, None, None, None].astype(x.dtype) / 1000.0


PARAMS = {"a": jnp.asarray([0.9, 0.5, -0.3, 1.2, 0.7], jnp.float32),
          "b": jnp.asarray([0.1, -0.2, 0.3, 0.05, 0.0], jnp.float32)}


def _toy_ref(x, t, c):
    a, b = np.asarray(PARAMS["a"], np.float64), np.asarray(PARAMS["b"], np.float64)
    return a[c][:, None, None, None] * x + b[c][:, None, None, None] + t / 1000.0


@pytest.fixture(scope="module")
def process():
    return GaussianProcess(make_schedule("linear", 100))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_guided_x0_matches_a_float64_hand_computation(process, prediction):
    model = ToyModel()
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (B, S, S, 1)), np.float64)
    labels = np.array([0, 2, 3])
    t, w = 60, 2.5
    den, params = guidance.guided_params(model, PARAMS, jnp.asarray(labels, jnp.int32), w)
    # one step t → 0: the loop returns x̂0 of the guided output
    out = sampling.sample(den, params, jax.random.PRNGKey(1), jnp.asarray(x, jnp.float32), process=process,
                          corrector="ddim", timesteps=[t, 0], prediction=prediction, clip=None)
    o = (1 + w) * _toy_ref(x, t, labels) - w * _toy_ref(x, t, np.full(B, K))  # the guided network output
    ab = float(np.asarray(process.schedule.alphas_cumprod, np.float64)[t])
    if prediction == "eps":
        x0 = (x - np.sqrt(1 - ab) * o) / np.sqrt(ab)
    elif prediction == "x0":
        x0 = o
    else:
        x0 = np.sqrt(ab) * x - np.sqrt(1 - ab) * o
    np.testing.assert_allclose(np.asarray(out.x0, np.float64), x0, rtol=1e-4, atol=1e-4)
    assert model.calls == [2 * B]  # the scan body traced once: one forward pass of 2B rows


def test_w0_is_the_conditional_model_and_guide_is_the_formula():
    model = ToyModel()
    x = jnp.ones((B, S, S, 1))
    t = jnp.full((B,), 10, jnp.int32)
    labels = jnp.asarray([1, 1, 0], jnp.int32)
    den, params = guidance.guided_params(model, PARAMS, labels, 0.0)
    np.testing.assert_allclose(np.asarray(den(params, x, t)), _toy_ref(np.ones((B, S, S, 1)), 10, [1, 1, 0]),
                               rtol=1e-6)
    assert model.calls == [B]  # w = 0: no unconditional branch
    g = guidance.guided_denoiser(model)
    np.testing.assert_allclose(np.asarray(g((PARAMS, labels, jnp.float32(0.0)), x, t)),
                               np.asarray(den(params, x, t)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(guidance.guide(jnp.float32(2.0), jnp.float32(0.5), 3.0)), 4 * 2 - 3 * 0.5)


def test_guided_unet_equals_two_separate_passes():
    from jaxdiff.models.unet import UNet

    model = UNet(out_channels=1, ch=8, ch_mult=(1, 2), num_groups=4, num_classes=K, image_size=8, in_channels=1)
    x = jax.random.normal(jax.random.PRNGKey(0), (B, 8, 8, 1))
    t = jnp.asarray([5, 50, 90], jnp.int32)
    p = jax.eval_shape(model.init, {"params": jax.random.PRNGKey(0)}, x, t)["params"]  # shapes only
    leaves, tree = jax.tree.flatten(p)
    rng = np.random.default_rng(1)  # on the host: a jax.random draw per leaf shape is a compilation each
    p = jax.tree.unflatten(tree, [jnp.asarray(0.3 * rng.standard_normal(a.shape), jnp.float32) for a in leaves])
    labels = jnp.asarray([0, 3, 1], jnp.int32)
    apply = jax.jit(lambda p, x, t, c: model.apply({"params": p}, x, t, c))  # jitted: eager flax is slow on CPU
    oc = np.asarray(apply(p, x, t, labels), np.float64)
    ou = np.asarray(apply(p, x, t, jnp.full((B,), K, jnp.int32)), np.float64)
    got = jax.jit(guidance.guided_denoiser(model))((p, labels, jnp.float32(1.5)), x, t)
    np.testing.assert_allclose(np.asarray(got), 2.5 * oc - 1.5 * ou, rtol=1e-4, atol=1e-4)


def test_new_labels_and_w_reuse_the_compiled_sampler(process):
    model = ToyModel()
    den = guidance.guided_denoiser(model)
    x = jnp.zeros((B, S, S, 1))
    outs = []

    def run(labels, w):
        params = (PARAMS, jnp.asarray(labels, jnp.int32), jnp.float32(w))
        outs.append(np.asarray(sampling.sample(den, params, jax.random.PRNGKey(0), x, process=process,
                                               corrector="ddim", timesteps=5, prediction="eps").x0))

    run([0, 1, 2], 1.0)
    size = sample_loop_jit._cache_size()
    for labels, w in (([3, 3, 3], 1.0), ([0, 1, 2], 3.0), ([2, 0, 1], 0.5)):
        run(labels, w)
    assert sample_loop_jit._cache_size() == size  # no new program
    assert len(model.calls) == 1  # traced once
    assert all(np.abs(outs[0] - o).max() > 1e-4 for o in outs[1:])  # and the values did change


def test_check_labels_for():
    with pytest.raises(ValueError, match="unconditional"):
        guidance.check_labels_for(types.SimpleNamespace(num_classes=0), [1])
    with pytest.raises(ValueError, match=r"labels 0 … 4; allowed: 0 … 3 \(model.num_classes=4\)"):
        guidance.check_labels_for(ToyModel(), np.array([0, 4]))
    with pytest.raises(ValueError, match="integer"):
        guidance.check_labels_for(ToyModel(), np.array([0.5]))
    assert guidance.check_labels_for(ToyModel(), np.array([0, 3])).dtype == np.int32


# --- sample.py's flags ----------------------------------------------------------------------------


@pytest.mark.parametrize("kw, message", [
    (dict(label=-1), "--label=-1: must be an integer >= 0"),
    (dict(labels="0-x"), "--labels='0-x': bad part"),
    (dict(label=1, labels="0-9"), "pass one"),
    (dict(label=1, guidance=-1.0), "--guidance=-1.0: must be a finite number >= 0"),
    (dict(guidance=2.0), "--guidance=2.0 needs --label or --labels"),
    (dict(mode="restore", label=1), "--label is for --mode=generate"),
])
def test_bad_label_flags_are_one_usage_error(kw, message):
    with pytest.raises(UsageError) as e:
        SampleOptions(workdir="w", **kw)
    assert message in str(e.value)


def _run(num_classes):
    c = runpy.run_path(os.path.join(ROOT, "configs", "ddim_cond.py"))["get_config"]()
    c.model.num_classes = num_classes
    return types.SimpleNamespace(config=c, process=GaussianProcess(make_schedule("linear", 10)))


def test_label_flags_checked_against_the_run():
    with pytest.raises(UsageError, match=r"--label=3: the model of w is unconditional \(model.num_classes=0\)"):
        SampleOptions(workdir="w", label=3).resolve(_run(0))
    with pytest.raises(UsageError, match=r"--labels=0-10: label 10 does not exist; allowed: 0 … 9"):
        SampleOptions(workdir="w", labels="0-10").resolve(_run(10))
    s = SampleOptions(workdir="w", labels="0-2,7").resolve(_run(10))
    assert s.label_classes == (0, 1, 2, 7) and s.num == 32 and s.guidance == 0.5  # 8 per class; the config's w
    np.testing.assert_array_equal(s.sample_labels, np.repeat([0, 1, 2, 7], 8))
    s = SampleOptions(workdir="w", labels="0-9", num=25, guidance=3.0).resolve(_run(10))
    assert s.num == 30 and s.guidance == 3.0 and list(s.sample_labels[::3]) == list(range(10))
    s = SampleOptions(workdir="w", label=4, num=5).resolve(_run(10))
    assert s.num == 5 and list(s.sample_labels) == [4] * 5
    assert SampleOptions(workdir="w").resolve(_run(10)).sample_labels is None


def test_output_names_carry_label_and_guidance():
    from jaxdiff.cli.common import tag

    def name(**kw):
        o = SampleOptions(workdir="w", **kw)
        classes = o.label_classes
        return tag(ModeSettings(options=o, corrector="ddim", eta=0.0, steps=20, sweep_steps=None, sweep="generation",
                                num=64, label_classes=classes, guidance=o.guidance or 0.0), 3, "ddim_20steps")

    assert name() == "generate_step3_ddim_20steps_n64"
    assert name(label=3, guidance=1.0) == "generate_step3_ddim_20steps_label3_w1_n64"
    assert name(labels="0-2,7", guidance=0.5) == "generate_step3_ddim_20steps_labels0-2+7_w0.5_n64"
    names = [name(label=3), name(label=4), name(label=3, guidance=2.0), name(labels="3"), name()]
    assert len(set(names)) == len(names)


def test_guided_sampling_sharded_over_8_devices_matches_one(process):
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxdiff.experiment import make_mesh

    mesh = make_mesh(jax.devices()[:8])
    model = ToyModel()
    den = guidance.guided_denoiser(model)
    n = 16
    x = jax.random.normal(jax.random.PRNGKey(0), (n, S, S, 1))
    labels = jnp.arange(n, dtype=jnp.int32) % K

    def run(x, labels):
        return np.asarray(sampling.sample(den, (PARAMS, labels, jnp.float32(2.0)), jax.random.PRNGKey(1), x,
                                          process=process, corrector="ddim", timesteps=4, prediction="eps").x0)

    sh = NamedSharding(mesh, P("data"))
    np.testing.assert_allclose(run(jax.device_put(x, sh), jax.device_put(labels, sh)), run(x, labels),
                               rtol=1e-5, atol=1e-5)
