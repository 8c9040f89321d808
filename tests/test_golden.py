"""Issue 18's proof that the process package moved nothing: today's numbers against golden arrays from before it.

``tests/golden/configs.npz`` (written by tests/golden/make_goldens.py on main at 2e3b236, before the change)
holds, for every config in configs/, x_t for fixed (x0, t, ε), three training losses from a fixed key and a
10-step sample from untrained parameters for each corrector of its process (tests/golden_cases.py).
``tests/golden/workdirs/`` holds tiny runs trained by that code, and ``workdir_samples.npz`` what sample.py
made of them: they still load and give the same images.

Equality is bitwise where the arithmetic is unchanged; the exceptions, each within 1e-6 relative, are named
in ``TOLERANT`` with the reason.
"""
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

import golden_cases

HERE = pathlib.Path(__file__).resolve().parent / "golden"
GOLDEN = np.load(HERE / "configs.npz")
WORKDIR_GOLDEN = np.load(HERE / "workdir_samples.npz")
#: "<config>/<quantity>" (a prefix) → why it is compared within RTOL rather than bitwise
TOLERANT: dict = {}
RTOL = 1e-6
#: the versions that made the golden arrays: bitwise equality only means something under the same XLA
MADE_WITH = json.loads((HERE / "VERSIONS.json").read_text())
same_jax = pytest.mark.skipif(jax.__version__ != MADE_WITH["jax"],
                              reason=f"the golden arrays were made with jax {MADE_WITH['jax']}; this is jax "
                                     f"{jax.__version__}, whose XLA may round differently")


def _compare(key, got, want):
    assert got.shape == want.shape, f"{key}: shape {got.shape} != golden {want.shape}"
    if any(key.startswith(prefix) for prefix in TOLERANT):
        scale = max(float(np.max(np.abs(want))), 1e-30)
        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale
        assert err <= RTOL, f"{key}: relative error {err:.3g} > {RTOL}"
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{key} is not bitwise the golden array")


def _package_api():
    from jaxdiff.experiment import build_model, build_process, make_mesh
    from jaxdiff.sampling import sample
    from jaxdiff.train.step import init_train_state, make_train_step

    return dict(build_process=build_process, make_model=build_model, init_train_state=init_train_state,
                make_train_step=make_train_step, sample=sample, make_mesh=make_mesh)


#: configs added with or after the process package: they have no numbers from before it
NEW_CONFIGS = {"flow", "edm", "warm_blur", "soft_diffusion"}
STORED = sorted({k.split("/")[0] for k in GOLDEN.files})


def test_golden_file_covers_every_config():
    assert set(STORED) | NEW_CONFIGS == set(golden_cases.CONFIGS), "a config was added or removed: say which"


#: stored corrector name → the one that computes what was stored, where a name now means another method:
#: ``heun`` became the exponential-integrator trapezoid (issue 20); Karras's Heun, stored, is ``heun_karras``
RENAMED = {"heun": "heun_karras"}


@pytest.mark.slow
@same_jax
@pytest.mark.parametrize("name", STORED)
def test_config_numbers_unchanged(name):
    got = golden_cases.compute(name, **_package_api(), corrector_name=lambda c: RENAMED.get(c, c))
    want = {k[len(name) + 1:]: GOLDEN[k] for k in GOLDEN.files if k.startswith(name + "/")}
    assert set(got) == set(want), f"{name}: quantities {sorted(got)} != golden {sorted(want)}"
    for k in sorted(want):
        _compare(f"{name}/{k}", np.asarray(got[k]), want[k])


@pytest.mark.slow
@same_jax
@pytest.mark.parametrize("name", sorted({k.split("/")[0] for k in WORKDIR_GOLDEN.files}))
def test_stored_workdir_samples_unchanged(name, tmp_path):
    from jaxdiff.cli.app import run

    workdir = tmp_path / name
    shutil.copytree(HERE / "workdirs" / name, workdir)
    modes = sorted({k.split("/")[1] for k in WORKDIR_GOLDEN.files if k.startswith(name + "/")})
    for mode in modes:
        files = run(workdir=str(workdir), mode=mode, num=8, seed=0, out=str(tmp_path / "out"), frames=0, batch=8)
        with np.load(files["npz"]) as z:
            got = {k: z[k] for k in z.files}
        prefix = f"{name}/{mode}/"
        want = {k[len(prefix):]: WORKDIR_GOLDEN[k] for k in WORKDIR_GOLDEN.files if k.startswith(prefix)}
        assert set(got) == set(want), f"{prefix}: arrays {sorted(got)} != golden {sorted(want)}"
        for k in sorted(want):
            _compare(prefix + k, got[k], want[k])
