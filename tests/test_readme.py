"""The README's code runs as written, and its worked degradation example behaves like a degradation."""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_commands_are_the_ci_commands():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0].strip().splitlines()
    setup, tests = bash[0], bash[1]
    assert setup in ci and tests in ci


def test_library_example_runs():
    ns = {}
    exec(compile(_blocks()[0], "README:library", "exec"), ns)
    assert ns["frames"].shape == (4, 8, 32, 32, 3)
    assert ns["x0_hat"].shape == (8, 32, 32, 3) and bool(jnp.all(jnp.isfinite(ns["x0_hat"])))


def test_new_degradation_example():
    from jaxdiff import degradations
    from jaxdiff.processes import ColdProcess
    from jaxdiff.sampling import sample

    exec(compile(_blocks()[1], "README:degradation", "exec"), {})
    try:
        deg = degradations.make_degradation("invert", T=10, image_size=8, channels=3)
        x0 = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 3), minval=-1, maxval=1)
        t = jnp.array([0, 3, 5, 10])
        out = deg.apply(x0, t, None)
        np.testing.assert_array_equal(out[0], x0[0])  # F_0 = identity
        np.testing.assert_allclose(out[3], -x0[3], atol=1e-6)  # F_T = the negative image
        proc = ColdProcess(deg)
        x_T = proc.mean(x0, jnp.full((4,), 10))
        res = sample(lambda p, x, tt: p, x0, jax.random.PRNGKey(1), x_T, process=proc,
                     corrector="cold_improved", prediction="x0")
        np.testing.assert_allclose(res.x0, x0, atol=1e-6)
    finally:
        degradations.DEGRADATIONS.unregister("invert")
