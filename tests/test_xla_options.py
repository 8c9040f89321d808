"""jaxdiff.cpu.xla_options: when the train step gets XLA's own convolutions, that the option reaches the compiled
program, and that it changes no number beyond float32 rounding."""
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxdiff.train import loop as training
from jaxdiff.cpu import xla_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = xla_options.MIN_LEVEL_SIZE


def small_config(image_size=32, ch=16):
    """configs/default.py with a two-level UNet at ``image_size`` × width ``ch``, T = 5, no warm-up."""
    c = runpy.run_path(os.path.join(ROOT, "configs", "default.py"))["get_config"]()
    c.data.image_size = image_size
    c.diffusion.T = 5
    c.diffusion.degradation_params = dict(kernel_size=3, std=1.0, routine="constant", padding="circular")
    c.model.update(dict(ch=ch, ch_mult=(1, 2), attn_resolutions=(), num_groups=8, dropout=0.0))
    c.train.update(dict(batch_size=16, warmup_steps=0))
    return c


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(xla_options.ENV, raising=False)
    flags = os.environ.get("XLA_FLAGS", "")
    monkeypatch.setenv("XLA_FLAGS", " ".join(f for f in flags.split() if xla_options.OPTION not in f))


def test_on_for_cpu_devices_above_the_break_even_only():
    devs = jax.devices("cpu")
    assert xla_options.train_compiler_options(devs, level_size=BIG) == {xla_options.OPTION: xla_options.VALUE}
    assert xla_options.train_compiler_options(np.array(devs).reshape(2, -1), level_size=4 * BIG) is not None
    assert xla_options.train_compiler_options(devs, level_size=BIG - 1) is None
    assert xla_options.train_compiler_options(devs) is not None  # size not known: not checked


class _FakeDevice:
    platform = "gpu"


def test_never_for_other_platforms():
    assert xla_options.train_compiler_options([_FakeDevice()], level_size=4 * BIG) is None


def test_env_off_and_the_users_own_xla_flag_win(monkeypatch):
    devs = jax.devices("cpu")
    monkeypatch.setenv(xla_options.ENV, "0")
    assert xla_options.train_compiler_options(devs, level_size=BIG) is None
    monkeypatch.setenv(xla_options.ENV, "1")
    assert xla_options.train_compiler_options(devs, level_size=BIG) is not None
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"] + f" --{xla_options.OPTION}=dot")
    assert xla_options.train_compiler_options(devs, level_size=BIG) is None


@pytest.mark.parametrize("value", ["yes", "2", "off"])
def test_bad_env_value_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(xla_options.ENV, value)
    with pytest.raises(xla_options.XlaOptionsError, match=f"{xla_options.ENV}='{value}' must be 1 .* or 0"):
        xla_options.enabled()


def test_an_option_this_jaxlib_rejects_falls_back_to_xla_defaults(monkeypatch, caplog):
    monkeypatch.setattr(xla_options, "VALUE", "LIBRARY_FUSION_TYPE_NO_SUCH_TYPE")
    xla_options.supported.cache_clear()
    try:
        assert xla_options.supported() is False
        assert xla_options.train_compiler_options(jax.devices("cpu"), level_size=BIG) is None
        assert "not accepted by this jaxlib" in caplog.text
    finally:
        xla_options.supported.cache_clear()  # the next caller probes again, with the real value


def test_level_size_reads_image_size_and_width():
    c = small_config(32, 16)
    assert xla_options.level_size(c) == 32 * 32 * 16 == BIG


def _convs_in_ynn_fusions(hlo: str) -> tuple:
    """(convolutions inside '__ynn_fusion' computations, all convolutions) of a compiled module's text."""
    bodies, cur = {}, None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
        if m:
            cur = bodies.setdefault(m.group(1), [])
        elif cur is not None:
            cur.append(line)
    called = [re.search(r"calls=%([\w.\-]+)", ln).group(1) for ln in hlo.splitlines() if "__ynn_fusion" in ln and "calls=" in ln]
    in_ynn = sum(sum(" convolution(" in ln for ln in bodies.get(c, [])) for c in called)
    return in_ynn, hlo.count(" convolution(")


@pytest.fixture(scope="module")
def step_pair():
    """One train step of a small UNet at 32×32 (level size exactly the threshold), compiled with XLA's defaults
    (JAXDIFF_XLA_CPU_OPTIONS=0) and with the option, plus a state and a batch."""
    cfg = small_config(32, 16)
    assert xla_options.level_size(cfg) >= BIG
    model, process = training.build_model(cfg), training.build_process(cfg)
    mesh = training.make_mesh()
    state = training.init_train_state(cfg, model, mesh=mesh)
    steps = {}
    mp = pytest.MonkeyPatch()
    try:
        for v in ("0", "1"):
            mp.setenv(xla_options.ENV, v)
            steps[v] = training.make_train_step(cfg, model, process, mesh=mesh, donate=False)
    finally:
        mp.undo()
    x = jax.random.uniform(jax.random.PRNGKey(3), (16, 32, 32, 1), minval=-1.0, maxval=1.0)
    x = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    return steps, state, x


def test_the_option_takes_the_convolutions_out_of_ynnpack(step_pair):
    steps, state, x = step_pair
    ynn_default, n_default = _convs_in_ynn_fusions(steps["0"].lower(state, x, 0).compile().as_text())
    ynn_option, n_option = _convs_in_ynn_fusions(steps["1"].lower(state, x, 0).compile().as_text())
    assert n_default == n_option > 0
    # With XLA's defaults most convolutions run as YNNPACK fusions; with the option only those XLA fused into a
    # YNNPACK reduction (a convolution feeding a sum) remain there.
    assert ynn_default > n_default // 2
    assert ynn_option < ynn_default // 2


def test_the_option_changes_no_number_beyond_rounding(step_pair):
    steps, state, x = step_pair
    out = {v: steps[v](state, x, 0) for v in ("0", "1")}
    (s0, m0), (s1, m1) = out["0"], out["1"]
    np.testing.assert_allclose(float(m1["loss"]), float(m0["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(m1["grad_norm"]), float(m0["grad_norm"]), rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(s0.params), jax.tree_util.tree_leaves(s1.params)):
        a, b = np.asarray(a), np.asarray(b)
        assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a)))), "params differ beyond float32"
    # ... and the step moved the parameters (the comparison above is not between two unchanged copies).
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree_util.tree_leaves(s0.params), jax.tree_util.tree_leaves(state.params)))
    assert moved > 1e-4


def test_train_cli_reports_a_bad_value_and_exits_2(tmp_path):
    env = dict(os.environ, **{xla_options.ENV: "maybe"})
    r = subprocess.run([sys.executable, "train.py", "--config=configs/default.py", f"--workdir={tmp_path / 'w'}",
                        "--config.train.num_steps=1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{xla_options.ENV}='maybe' must be 1" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w").exists()
