"""What a user registers in their own module or config file travels with the run: recorded at training, registered
again when the run is loaded (jaxdiff.plugins), and a missing module is one message naming it.

The user's module is written to tmp_path, outside the package, as a new user would write it following the README."""
import hashlib
import importlib.util
import logging
import os
import runpy
import subprocess
import sys
import textwrap

import ml_collections
import numpy as np
import pytest

from jaxdiff import degradations, plugins, sampling
from jaxdiff.processes import schedules
from jaxdiff.plugins import PluginError, import_plugins, plugin_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: a degradation that generates (fade to a per-image color, read back from x_T) and Cold Diffusion's improved
#: step written out as a corrector; both registered under names given by the test
USER_MODULE = '''
"""A user's own degradation and corrector (not part of jaxdiff)."""
import jax
import jax.numpy as jnp

from jaxdiff.degradations import Degradation, GenerationPrior, register_degradation
from jaxdiff.sampling import register_corrector

DEGRADATION, CORRECTOR = {deg!r}, {corr!r}


@register_degradation(DEGRADATION)
def tint(*, T, image_size, channels):
    def apply(x0, t, aux):  # x_t = (1 - t/T) x0 + (t/T) c, c one color per image
        s = (t.astype(jnp.float32) / T)[:, None, None, None]
        return (1 - s) * x0 + s * aux

    def sample_aux(key, x0):
        return jax.random.uniform(key, (x0.shape[0], 1, 1, x0.shape[-1]), minval=-0.5, maxval=0.5)

    generation = GenerationPrior(kind="color", fit_on="none", fit_params={{"low": -0.5, "high": 0.5}},
                                 aux=lambda x_T, key: x_T.mean(axis=(1, 2), keepdims=True), corrector=CORRECTOR)
    return Degradation(name=DEGRADATION, T=T, apply=apply, sample_aux=sample_aux, generation=generation)


@register_corrector(CORRECTOR)
def improved(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    x_prev = x_t - process.mean(x0_hat, t, aux) + process.mean(x0_hat, t_prev, aux)
    return jnp.where((t_prev == 0)[:, None, None, None], x0_hat, x_prev)
'''


def _sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def tiny_config(degradation="blur", corrector="cold_improved"):
    c = runpy.run_path(os.path.join(ROOT, "configs", "default.py"))["get_config"]()
    if degradation != "blur":
        c.diffusion.degradation = degradation
        c.diffusion.degradation_params = ml_collections.ConfigDict({})
    c.diffusion.T, c.data.image_size, c.sample.corrector = 4, 8, corrector
    m, t = c.model, c.train
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_groups = 8, (1,), 1, (), 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps = 16, 2, 1, 1, 0
    t.num_sample_images = 0
    return c


@pytest.fixture
def user_module(tmp_path, request):
    """(module name, path, degradation, corrector): a module in tmp_path registering both; unregistered after."""
    uid = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[-40:]
    name, deg, corr = f"user_mod_{uid}", f"user_tint_{uid}", f"user_step_{uid}"
    path = tmp_path / f"{name}.py"
    path.write_text(USER_MODULE.format(deg=deg, corr=corr))
    yield name, str(path), deg, corr
    degradations.DEGRADATIONS.unregister(deg)
    sampling.CORRECTORS.unregister(corr)
    sys.modules.pop(name, None)


def _forget(name, deg, corr):
    """As a fresh process: the names unregistered, the module not imported."""
    degradations.DEGRADATIONS.unregister(deg)
    sampling.CORRECTORS.unregister(corr)
    sys.modules.pop(name, None)


def test_a_run_of_built_ins_records_nothing():
    assert plugin_records(tiny_config()) == []
    g = tiny_config(corrector="ddim")
    g.diffusion.degradation, g.diffusion.degradation_params = "identity", {}
    g.diffusion.schedule, g.diffusion.prediction = "linear", "eps"
    assert plugin_records(g) == []


def test_records_name_the_importable_module_its_file_hash_and_what_it_registers(user_module, monkeypatch):
    name, path, deg, corr = user_module
    monkeypatch.syspath_prepend(os.path.dirname(path))
    __import__(name)
    (rec,) = plugin_records(tiny_config(deg, corr))
    assert rec == {"module": name, "file": path, "sha256": _sha256(path), "importable": True,
                   "registers": [["degradation", deg], ["corrector", corr]]}
    # on a built-in corrector the user's one is still needed: the degradation generates with it
    assert plugin_records(tiny_config(deg))[0]["registers"] == [["degradation", deg], ["corrector", corr]]


def test_a_module_loaded_by_path_is_recorded_as_a_file(user_module):
    name, path, deg, corr = user_module
    spec = importlib.util.spec_from_file_location(name, path)  # as a config file may load it: not on sys.path
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    (rec,) = plugin_records(tiny_config(deg, corr))
    assert rec["module"] == name and rec["file"] == path and rec["importable"] is False


def test_a_schedule_of_a_gaussian_run_is_recorded(tmp_path, monkeypatch):
    path = tmp_path / "user_sched_mod.py"
    path.write_text("from jaxdiff.processes import schedules\n\n@schedules.register_schedule('user_sched')\n"
                    "def quad(T, **kw):\n    return schedules.make_schedule('linear', T, **kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        __import__("user_sched_mod")
        c = tiny_config(corrector="ddim")
        c.diffusion.degradation, c.diffusion.degradation_params = "identity", {}
        c.diffusion.prediction, c.diffusion.schedule = "eps", "user_sched"
        (rec,) = plugin_records(c)
        assert rec["module"] == "user_sched_mod" and rec["registers"] == [["schedule", "user_sched"]]
    finally:
        schedules.SCHEDULES.unregister("user_sched")
        sys.modules.pop("user_sched_mod", None)


def test_import_plugins_registers_again_by_name_then_by_file(user_module, monkeypatch, tmp_path):
    name, path, deg, corr = user_module
    monkeypatch.syspath_prepend(os.path.dirname(path))
    __import__(name)
    records = plugin_records(tiny_config(deg, corr))
    assert import_plugins(records, workdir="wd") == []  # registered in this process already: nothing runs
    _forget(name, deg, corr)
    assert deg not in degradations.DEGRADATIONS
    assert import_plugins(records, workdir="wd") == [name]  # imported by name
    assert deg in degradations.DEGRADATIONS and corr in sampling.CORRECTORS and name in sys.modules
    # not on sys.path any more (another shell): the recorded file is run
    _forget(name, deg, corr)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != os.path.dirname(path)])
    assert import_plugins(records, workdir="wd") == [path]
    assert degradations.DEGRADATIONS.origin(deg).file == path
    _forget(name, deg, corr)
    # a file recorded as not importable (a config file, a module loaded by path) is run
    records[0]["importable"] = False
    assert import_plugins(records) == [path] and corr in sampling.CORRECTORS


def test_a_missing_module_is_one_message_naming_it_the_names_and_the_workdir(user_module, tmp_path):
    name, path, deg, corr = user_module
    rec = {"module": name, "file": path, "sha256": _sha256(path), "importable": True,
           "registers": [["degradation", deg], ["corrector", corr]]}
    _forget(name, deg, corr)
    os.rename(path, path + ".moved")
    with pytest.raises(PluginError) as e:
        import_plugins([rec], workdir="/runs/x")
    msg = str(e.value)
    assert msg.startswith(f"the run in /runs/x uses degradation '{deg}', corrector '{corr}', registered by module "
                          f"'{name}' ({path}), which cannot be imported (ModuleNotFoundError: No module named "
                          f"'{name}') and is missing: put it back at that path or module '{name}' on PYTHONPATH")
    with pytest.raises(PluginError, match=rf"registered by the file {path}, which is missing: put it back"):
        import_plugins([dict(rec, importable=False)], workdir="/runs/x")
    os.rename(path + ".moved", path)


def test_a_module_that_fails_or_no_longer_registers_the_name_is_named(tmp_path, caplog):
    bad = tmp_path / "user_broken.py"
    bad.write_text("raise RuntimeError('the user module is broken')\n")
    rec = {"module": "user_broken", "file": str(bad), "sha256": None, "importable": False,
           "registers": [["degradation", "user_gone"]]}
    with pytest.raises(PluginError, match=rf"uses degradation 'user_gone': running {bad} \(which registered it\) "
                                          "failed: RuntimeError: the user module is broken"):
        import_plugins([rec], workdir="w")
    bad.write_text("X = 1\n")
    with pytest.raises(PluginError, match=rf"degradation 'user_gone', registered by the file {bad} when it was "
                                          rf"trained, but {bad} no longer registers it"):
        import_plugins([rec], workdir="w")
    with pytest.raises(PluginError, match=r"registered by the script /x/train_mine.py \(run as __main__\), which "
                                          "loading cannot run again"):
        import_plugins([dict(rec, module="__main__", file="/x/train_mine.py")])
    with pytest.raises(PluginError, match="damaged plugins record"):
        import_plugins([{"module": "m"}])
    sys.modules.pop("user_broken", None)


def test_a_file_changed_since_training_is_used_with_a_warning(user_module, caplog):
    name, path, deg, corr = user_module
    rec = {"module": name, "file": path, "sha256": "0" * 64, "importable": False,
           "registers": [["degradation", deg]]}
    _forget(name, deg, corr)
    with caplog.at_level(logging.WARNING, logger="jaxdiff.plugins"):
        assert import_plugins([rec], workdir="w") == [path]
    assert f"from {path}, which has changed since the run was trained" in caplog.text


def test_a_registration_in_main_warns_at_training(monkeypatch, caplog):
    def builder(*, T, **_):
        return lambda x0, t: x0

    builder.__module__ = "__main__"
    degradations.register_degradation("user_in_main")(builder)
    try:
        with caplog.at_level(logging.WARNING, logger="jaxdiff.plugins"):
            (rec,) = plugin_records(tiny_config("user_in_main"))
        assert rec["module"] == "__main__" and rec["importable"] is False
        assert "degradation 'user_in_main' is registered in the script" in caplog.text
        assert "sample.py will not find it" in caplog.text
    finally:
        degradations.DEGRADATIONS.unregister("user_in_main")


def test_load_run_imports_the_recorded_module_before_building(user_module, tmp_path, monkeypatch):
    """A checkpoint whose metadata records the user's module loads after its names were forgotten; without
    the module it is a PluginError, not 'no checkpoint loads'."""
    import jax
    import jax.numpy as jnp

    from jaxdiff.checkpoints import make_meta
    from jaxdiff.experiment import build_model, load_run
    from jaxdiff.train.checkpoints import Checkpointer

    name, path, deg, corr = user_module
    monkeypatch.syspath_prepend(os.path.dirname(path))
    __import__(name)
    config = tiny_config(deg, corr)
    model = build_model(config)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8, 8, 1)),
                                               jnp.zeros((1,), jnp.int32), train=False)["params"])
    params = jax.tree.map(lambda a: jnp.full(a.shape, 0.5, a.dtype), shapes)  # any values: loading is tested
    wd = tmp_path / "wd"
    ck = Checkpointer(str(wd / "checkpoints"))
    ck.save(1, {"step": jnp.int32(1), "params": params, "ema_params": params}, config=config,
            meta=make_meta(config, plugins=plugin_records(config)))
    ck.close()
    _forget(name, deg, corr)
    run = load_run(str(wd))
    assert run.process.degradation.name == deg and corr in sampling.CORRECTORS
    assert all(float(np.asarray(a).min()) == 0.5 for a in jax.tree.leaves(run.params))
    _forget(name, deg, corr)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != os.path.dirname(path)])
    os.rename(path, path + ".moved")
    with pytest.raises(PluginError, match=rf"the run in {wd} uses degradation '{deg}'.*is missing"):
        load_run(str(wd))


# --- end to end, as a new user: train.py and sample.py in subprocesses ---------------------------------------

def readme_config_file() -> str:
    """README's "Adding a degradation": the `invert` registration followed by its config-file example."""
    import re

    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (invert,) = [b for b in blocks if '@register_degradation("invert")' in b]
    (config,) = [b for b in blocks if "def get_config" in b and '"invert"' in b]
    return invert + "\n\n" + config


#: a tiny run, as a user overrides a config on the command line
TINY_FLAGS = ["--config.diffusion.T=4", "--config.train.num_steps=2", "--config.train.checkpoint_every=2",
              "--config.train.batch_size=16", "--config.train.warmup_steps=0", "--config.train.num_sample_images=0",
              "--config.model.ch=8", "--config.model.ch_mult=(1,)", "--config.model.num_groups=4"]

MODULE_CONFIG = '''
"""A config file that loads the user's module by path and selects its degradation and corrector."""
import importlib.util
import pathlib
import runpy

_spec = importlib.util.spec_from_file_location("my_plugins", pathlib.Path(__file__).with_name("my_plugins.py"))
my_plugins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(my_plugins)


def get_config():
    c = runpy.run_path({default!r})["get_config"]()
    c.diffusion.degradation = my_plugins.DEGRADATION
    c.diffusion.degradation_params = {{}}
    c.sample.corrector = my_plugins.CORRECTOR
{tiny}
    return c
'''

TINY = '''    c.diffusion.T = 4  # 16x16 digits: evaluate's SSIM needs 11x11 at least
    m, t = c.model, c.train
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_groups = 8, (1,), 1, (), 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps = 16, 2, 2, 1, 0
    t.num_sample_images = 0'''


def _env():
    env = dict(os.environ, JAXDIFF_CPU_DEVICES="1")
    env.pop("XLA_FLAGS", None)
    return env


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600)


def _sample(workdir, cwd, *flags):
    return _run([os.path.join(ROOT, "sample.py"), f"--workdir={workdir}", "--num=2", "--frames=0", *flags], cwd)


def _ok(r):
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def _written(r) -> list:
    """The files sample.py lists ("name: path" lines), each checked to exist."""
    paths = [line.split(": ", 1)[1] for line in r.stdout.splitlines() if ": /" in line]
    assert paths and all(os.path.isfile(p) for p in paths), r.stdout
    return paths


@pytest.mark.slow
def test_readme_config_file_registering_invert_trains_and_restores(tmp_path):
    """The issue's case, README's config file that registers `invert`: it trains with train.py; sample.py restores from that
    workdir in a fresh process run from another directory; without the file it is one message, exit code 2."""
    cfg = tmp_path / "my_invert.py"
    cfg.write_text(readme_config_file())
    wd = tmp_path / "wd"
    _ok(_run([os.path.join(ROOT, "train.py"), f"--config={cfg}", f"--workdir={wd}", *TINY_FLAGS], cwd=str(tmp_path)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _written(_ok(_sample(wd, str(elsewhere), "--mode=restore")))
    os.rename(cfg, tmp_path / "my_invert.moved")
    r = _sample(wd, str(elsewhere), "--mode=restore")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"sample.py: the run in {wd} uses degradation 'invert', registered by the file {cfg}, which is missing: "
        "put it back at that path (or, in Python, import what registers degradation 'invert' before load_run)")


@pytest.mark.slow
def test_a_module_loaded_by_the_config_works_in_every_sample_mode(tmp_path):
    """A degradation and a corrector in the user's own module, loaded by path from the config file: train.py,
    then sample.py --mode=generate, and the other modes through sample.py's cli.run in one fresh process
    (fill, inpainting, refuses cold runs by design)."""
    (tmp_path / "my_plugins.py").write_text(USER_MODULE.format(deg="my_tint", corr="my_improved"))
    cfg = tmp_path / "my_config.py"
    cfg.write_text(MODULE_CONFIG.format(default=os.path.join(ROOT, "configs", "default.py"), tiny=TINY))
    wd = tmp_path / "wd"
    _ok(_run([os.path.join(ROOT, "train.py"), f"--config={cfg}", f"--workdir={wd}"], cwd=str(tmp_path)))
    assert _written(_ok(_sample(wd, ROOT, "--mode=generate", "--force")))
    code = textwrap.dedent(f"""
        import sys
        from jaxdiff import cli
        for mode in ("restore", "forward", "blend", "evaluate"):
            files = cli.run(workdir={str(wd)!r}, mode=mode, num=2, frames=0, force=True)
            assert files, mode
        from jaxdiff import degradations, sampling
        assert degradations.DEGRADATIONS.origin("my_tint").module == "my_plugins"
        print("MODES-OK", sorted(m for m in sys.modules if m.startswith("jaxdiff.train")))
    """)
    r = _ok(_run(["-c", code], ROOT))
    assert "MODES-OK []" in r.stdout
    z = np.load(next(str(wd / "samples" / f) for f in os.listdir(wd / "samples") if f.startswith("generate")
                     and f.endswith(".npz")))
    assert np.isfinite(z[z.files[0]]).all()
    os.rename(tmp_path / "my_plugins.py", tmp_path / "my_plugins.moved")
    r = _sample(wd, ROOT, "--mode=generate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sample.py: the run in {wd} uses degradation 'my_tint', corrector 'my_improved', "
                           f"registered by the file {tmp_path / 'my_plugins.py'}, which is missing"), last


def test_plugins_module_docstring_names_every_field_of_a_record():
    for key in ("module", "file", "sha256", "importable", "registers"):
        assert f'"{key}"' in plugins.__doc__
