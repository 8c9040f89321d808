"""bench/accelerator.py --quick runs on the CPU and writes its table (JSON + Markdown) with every column."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import accelerator  # noqa: E402


def test_peak_table_by_device_kind():
    assert accelerator.peak_tflops("NVIDIA H200", "bfloat16") == 989.4
    assert accelerator.peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.0
    assert accelerator.peak_tflops("NVIDIA A100-SXM4-80GB", "float32") == 156.0
    assert accelerator.peak_tflops("TPU v5 lite", "bfloat16") == 197.0
    assert accelerator.peak_tflops("TPU v4", "float32") is None
    assert accelerator.peak_tflops("cpu", "bfloat16") is None


@pytest.mark.slow
def test_quick_run_writes_the_table(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    # --quick shrinks both specs to the same two-level smoke network: one of them runs every code path
    r = subprocess.run([sys.executable, "-m", "bench.accelerator", "--quick", "--specs=bench32"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(open(os.path.join(ROOT, "bench", "results", "accelerator.json")).read())
    rows = res["rows"]
    assert {(x["spec"], x["dtype"], x["pass"]) for x in rows} == {
        ("bench32", d, p) for d in ("float32", "bfloat16") for p in ("train", "forward")}
    for x in rows:
        assert set(x) <= set(accelerator.COLUMNS) and x["img/s"] > 0 and x["TFLOP/s"] > 0
        assert "MFU" not in x  # no peak for a CPU
    assert "MFU omitted" in res["table"]
    assert [s["spec"] for s in res["sampler"]] == ["bench32"]
    assert all(0 < s["efficiency"] < 10 for s in res["sampler"])
    header = "| " + " | ".join(accelerator.COLUMNS) + " |"
    assert header in r.stdout
    assert header in open(os.path.join(ROOT, "bench", "results", "accelerator.md")).read()
    torch_ok = all(__import__("importlib").util.find_spec(m) for m in ("torch", "diffusers"))
    if torch_ok:
        assert {"jaxdiff", "torch eager"} <= {x["contender"] for x in rows}
        assert all("vs torch eager" in x for x in rows)
        assert res["params"]["bench32"]["jaxdiff"] == res["params"]["bench32"]["diffusers"]
        assert set(res["params"]) == {"bench32"}


def test_full_specs_have_their_published_sizes():
    """Full size (not --quick): bench32 is diffusers' 6,472,195-parameter spec; ddpm64 DDIM's CelebA 64x64 UNet."""
    import jax

    from jaxdiff import experiment
    from jaxdiff.models.unet import param_count

    for spec, n in (("bench32", 6_472_195), ("ddpm64", 78_700_803)):
        c = accelerator.spec_config(spec, "float32", quick=False)
        model = experiment.build_model(c)
        s, ch = int(c.data.image_size), int(c.data.channels)
        x, t = jax.numpy.zeros((1, s, s, ch)), jax.numpy.ones((1,), jax.numpy.int32)
        shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, t)["params"])
        assert param_count(shapes) == n, spec
