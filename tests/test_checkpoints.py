"""Orbax checkpoints: round trip of every leaf, retention, JSON items, and clear errors with fallback."""
import glob
import os

import ml_collections
import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff.checkpoints import CheckpointError, make_meta
from jaxdiff.train.checkpoints import Checkpointer, abstract_like
from jaxdiff.train.state import create_train_state, make_optimizer
from jaxdiff.experiment import make_mesh


def _config():
    c = ml_collections.ConfigDict()
    c.seed = 3
    c.data = dict(source="digits", image_size=8, channels=1, eval_split="test")
    c.diffusion = dict(T=5, degradation="blur", prediction="x0", schedule="constant", schedule_params={},
                       degradation_params={"kernel_size": 3, "std": 1.0})
    c.model = dict(ch=8, ch_mult=(1, 2))
    c.train = dict(learning_rate=1e-3, warmup_steps=2, num_steps=10, grad_clip_norm=1.0, weight_decay=0.01)
    return c


def _state(seed=0, width=3, mesh=None):
    r = np.random.default_rng(seed)
    params = {"conv": {"kernel": jnp.asarray(r.normal(size=(3, 3, 1, width)), jnp.float32),
                       "bias": jnp.asarray(r.normal(size=(width,)), jnp.float32)},
              "dense": {"kernel": jnp.asarray(r.normal(size=(width, 2)), jnp.float32)}}
    tx = make_optimizer(_config().train)
    st = create_train_state(params=params, apply_fn=lambda *a, **k: None, tx=tx)
    # take two real optimizer steps so mu, nu, counts and the EMA are all non-trivial
    for _ in range(2):
        g = jax.tree.map(lambda p: jnp.sin(p) + 0.1, st.params)
        u, o = st.tx.update(g, st.opt_state, st.params)
        new = jax.tree.map(lambda a, b: a + b, st.params, u)
        st = st.replace(step=st.step + 1, params=new, opt_state=o,
                        ema_params=jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, st.ema_params, new),
                        skipped_total=st.skipped_total + 1, nonfinite_count=jnp.int32(7))
    if mesh is not None:
        st = jax.device_put(st, NamedSharding(mesh, P()))
    return st


def _assert_trees_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_loads_every_leaf_and_the_json_items(tmp_path):
    mesh = make_mesh()
    st = _state(mesh=mesh)
    cfg = _config()
    ck = Checkpointer(str(tmp_path / "ck"), max_to_keep=2)
    ck.save(2, st.to_pytree(), config=cfg, meta=make_meta(cfg, note="x"))
    ck.wait()
    fresh = _state(seed=99, mesh=mesh)  # same shapes, other values: the load target
    repl = NamedSharding(mesh, P())
    r = ck.load(2, abstract_like(fresh.to_pytree(), repl))
    _assert_trees_equal(r.state, st.to_pytree())
    loaded = fresh.replace_from_pytree(r.state)
    assert loaded.tx is fresh.tx
    assert int(loaded.step) == 2 and int(loaded.skipped_total) == 2 and int(loaded.nonfinite_count) == 7
    assert all(x.sharding.is_equivalent_to(repl, x.ndim) for x in jax.tree_util.tree_leaves(r.state))
    # config as JSON (tuples become lists) and the sampler's metadata
    assert r.config["model"]["ch_mult"] == [1, 2] and r.config["seed"] == 3
    assert ml_collections.ConfigDict(r.config).diffusion.degradation_params.kernel_size == 3
    assert r.meta["image_size"] == 8 and r.meta["channels"] == 1 and r.meta["T"] == 5
    assert (r.meta["degradation"], r.meta["schedule"]) == ("blur", "constant")
    assert r.meta["step"] == 2 and r.meta["note"] == "x"
    assert ck.read_json(2)[1] == r.meta
    ck.close()


def test_keeps_the_last_k_and_writes_no_pickle(tmp_path):
    st = _state()
    cfg = _config()
    ck = Checkpointer(str(tmp_path), max_to_keep=2)
    for s in (1, 2, 3, 4):
        ck.save(s, st.to_pytree(), config=cfg, meta=make_meta(cfg))
    ck.wait()
    assert ck.all_steps() == [3, 4] and ck.latest_step() == 4
    for f in glob.glob(str(tmp_path / "**"), recursive=True):
        if os.path.isfile(f):
            with open(f, "rb") as fh:
                head = fh.read(2)
            assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), f
    ck.close()


def test_shape_mismatch_names_step_and_leaf(tmp_path):
    st = _state(width=3)
    cfg = _config()
    ck = Checkpointer(str(tmp_path), max_to_keep=3)
    ck.save(5, st.to_pytree(), config=cfg, meta=make_meta(cfg))
    ck.wait()
    other = _state(width=4)
    with pytest.raises(CheckpointError, match=r"step 5.*params/conv/bias.*float32\(3,\).*float32\(4,\)") as e:
        ck.load(5, abstract_like(other.to_pytree()))
    assert e.value.step == 5
    with pytest.raises(CheckpointError, match="step 6: not found"):
        ck.load(6, abstract_like(st.to_pytree()))
    ck.close()


def test_truncated_newest_falls_back_to_the_previous_step(tmp_path):
    cfg = _config()
    ck = Checkpointer(str(tmp_path), max_to_keep=3)
    a, b = _state(seed=1), _state(seed=2)
    ck.save(10, a.to_pytree(), config=cfg, meta=make_meta(cfg))
    ck.save(20, b.to_pytree(), config=cfg, meta=make_meta(cfg))
    ck.wait()
    target = abstract_like(a.to_pytree())
    data = [f for f in glob.glob(str(tmp_path / "20" / "state" / "**"), recursive=True)
            if os.path.isfile(f) and os.sep + "d" + os.sep in f]
    assert data
    for f in data:  # cut every data file in half
        with open(f, "rb") as fh:
            blob = fh.read()
        with open(f, "wb") as fh:
            fh.write(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="step 20"):
        ck.load(20, target)
    r = ck.load_latest_valid(target)
    assert r.step == 10
    _assert_trees_equal(r.state, a.to_pytree())
    ck.close()


def test_empty_directory_loads_nothing(tmp_path):
    ck = Checkpointer(str(tmp_path / "none"), max_to_keep=1)
    assert ck.load_latest_valid(abstract_like(_state().to_pytree())) is None
    assert ck.latest_step() is None
    ck.close()


def _modules_after(code: str, *args: str) -> list[str]:
    """The ``jaxdiff.train`` modules a fresh interpreter has imported after running ``code``."""
    import subprocess
    import sys

    probe = code + "\nimport sys\nprint('TRAIN_MODULES', sorted(m for m in sys.modules if m == 'jaxdiff.train' " \
                   "or m.startswith('jaxdiff.train.')))\n"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("TRAIN_MODULES")][-1]
    return eval(line[len("TRAIN_MODULES"):])  # noqa: S307  (a list of names this test printed)


def test_the_loading_modules_import_nothing_from_the_training_package():
    assert _modules_after("import jaxdiff.experiment\njaxdiff.experiment.load_run\nimport jaxdiff.checkpoints\n"
                          "import jaxdiff.inference, jaxdiff.cli, sample") == []
    # the probe sees an import of the training package when there is one
    assert "jaxdiff.train.checkpoints" in _modules_after("import jaxdiff.checkpoints\nfrom jaxdiff.train import checkpoints")


@pytest.mark.slow
def test_loading_a_run_and_sampling_import_nothing_from_the_training_package(tmp_path):
    """A run saved by the training checkpointer, loaded, and its forward pictures drawn in a fresh process (every
    sampling mode's imports: tests/test_plugins.py, which checks the same after restore/interpolate/evaluate)."""
    import runpy

    from jaxdiff.experiment import build_model
    from jaxdiff.train.step import init_train_state

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = runpy.run_path(os.path.join(root, "configs", "cold_blur.py"))["get_config"]()
    config.diffusion.T, config.data.image_size = 4, 8
    config.model.update(dict(ch=8, ch_mult=(1, 2), num_groups=4))
    state = init_train_state(config, build_model(config))
    ck = Checkpointer(str(tmp_path / "wd" / "checkpoints"))
    ck.save(1, state.to_pytree(), config=config, meta=make_meta(config))
    ck.close()
    code = ("import sys\nfrom jaxdiff import cli\nfrom jaxdiff.experiment import load_run\n"
            "assert load_run(sys.argv[1]).step == 1\n"
            "assert cli.run(workdir=sys.argv[1], mode='forward', num=2, out=sys.argv[2], frames=0)\n")
    assert _modules_after(code, str(tmp_path / "wd"), str(tmp_path / "out")) == []
    assert os.listdir(tmp_path / "out")
