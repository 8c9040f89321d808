#!/usr/bin/env python
"""Trains the feature network (jaxdiff.evaluation.features.DigitsCNN) and writes its weights as a plain npz.

    .venv/bin/python scripts/train_feature_net.py            # → jaxdiff/assets/digits_classifier.npz
    .venv/bin/python scripts/train_feature_net.py --config=configs/ddim.py:mnist [--workdir=…]
                                                             # → <workdir>/feature_net.npz, used by evaluate

With ``--config``: the config's labelled ``data.source`` (train split; test = ``data.eval_split``), read at
its image size and channels and reduced as the evaluation reduces them (channel mean, 16×16); K = the
largest label + 1 classes.

Data: scikit-learn's digits at 16×16 through ``jaxdiff.data`` — the same fixed, seeded 90 % train /
10 % test split (and the same 8→16 resize) the diffusion models train and are evaluated on. Training
sees only the train split; the test accuracy is printed and stored in the file's ``meta/``.
Augmentation: random shifts of up to ``--max-shift`` pixels (background filled with −1) and
Gaussian pixel noise with a per-image σ ~ U(0, ``--max-noise``), so near-miss samples are still read.
Fixed seed, no data-dependent host randomness: the same command gives the same weights on one
machine (and the same bytes: the npz is written with fixed timestamps).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "jaxdiff", "assets", "digits_classifier.npz")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="train on this config's data.source (configs/x.py[:variant])")
    p.add_argument("--workdir", default=None, help="with --config: the run directory (default: workdirs/<config "
                   "name>[_<variant>]); the net goes to <workdir>/feature_net.npz")
    p.add_argument("--out", default=None, help="output .npz (default: the shipped asset, or "
                   "<workdir>/feature_net.npz with --config)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (warm-up, then cosine decay)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--max-shift", type=int, default=2, help="largest random shift in pixels (at 16×16)")
    p.add_argument("--max-noise", type=float, default=0.1, help="largest per-image pixel-noise σ")
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error(f"--steps must be >= 1, got {a.steps}")
    if a.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {a.batch_size}")
    if not a.lr > 0:
        p.error(f"--lr must be > 0, got {a.lr}")
    if a.max_shift < 0 or a.max_noise < 0:
        p.error("--max-shift and --max-noise must be >= 0")
    if a.workdir is not None and a.config is None:
        p.error(f"--workdir={a.workdir!r} needs --config (the data the net is trained on)")
    if a.out is None:
        if a.config is None:
            a.out = DEFAULT_OUT
        else:
            from jaxdiff.config.files import default_workdir
            from jaxdiff.evaluation.features import FEATURE_NET_FILE

            a.out = os.path.join(a.workdir or default_workdir(a.config), FEATURE_NET_FILE)
    return a


def load_digits(split: str):
    """(images (N, 16, 16, 1) float32 in [−1, 1], labels (N,) int32) of the jaxdiff digits split."""
    from jaxdiff import data
    from jaxdiff.evaluation.features import IMAGE_SIZE

    src = data.load_source("digits", split=split, image_size=IMAGE_SIZE, channels=1)
    return data.normalize(src.images), src.labels


def load_config_data(config, split: str):
    """(images (N, 16, 16, 1) float32 as the evaluation feeds the net, labels (N,) int32) of a config's source."""
    import numpy as np

    from jaxdiff import data
    from jaxdiff.evaluation import features

    src = data.source_from_config(config, split=split)
    if src.labels is None:
        raise SystemExit(f"train_feature_net.py: --config: data.source={config.data.source!r} has no labels; "
                         "a feature net is trained as a classifier and needs a labelled source")
    x = np.concatenate([np.asarray(features.preprocess(data.normalize(src.get(np.arange(i, min(i + 1024, len(src)))))))
                        for i in range(0, len(src), 1024)])
    return x, np.asarray(src.labels, np.int32)


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxdiff.evaluation import features

    t0 = time.time()
    if args.config is None:
        x_train, y_train = load_digits("train")
        x_test, y_test = load_digits("test")
        num_classes, name = features.NUM_CLASSES, "digits"
    else:
        from jaxdiff.config.files import load_config_file

        config = load_config_file(args.config)
        name = str(config.data.source)
        x_train, y_train = load_config_data(config, "train")
        x_test, y_test = load_config_data(config, str(config.data.eval_split))
        num_classes = max(2, int(y_train.max()) + 1)
    print(f"{name}: train {x_train.shape[0]}, test {x_test.shape[0]} images of {x_train.shape[1:]}, "
          f"{num_classes} classes")

    model = features.DigitsCNN(num_classes=num_classes)
    key = jax.random.PRNGKey(args.seed)
    init_key, data_key = jax.random.split(key)
    params = model.init(init_key, jnp.zeros((1,) + x_train.shape[1:], jnp.float32))["params"]
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10), args.steps, args.lr * 0.01)
    opt = optax.adamw(sched, weight_decay=args.weight_decay)
    opt_state = opt.init(params)
    xs, ys = jnp.asarray(x_train), jnp.asarray(y_train)
    s, n_train = args.max_shift, x_train.shape[0]

    def augment(key, x):
        # shift each image by (dy, dx) ∈ [−s, s]² inside a −1-padded canvas, then add pixel noise
        k1, k2, k3 = jax.random.split(key, 3)
        b, h, w, _ = x.shape
        shifts = jax.random.randint(k1, (b, 2), 0, 2 * s + 1)
        canvas = jnp.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), constant_values=-1.0)
        crop = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, 1)))
        x = crop(canvas, shifts)
        sigma = jax.random.uniform(k2, (b, 1, 1, 1), maxval=args.max_noise)
        return x + sigma * jax.random.normal(k3, x.shape)

    def loss_fn(p, x, y):
        logits, _ = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train_step(params, opt_state, step):
        k = jax.random.fold_in(data_key, step)
        k_idx, k_aug = jax.random.split(k)
        idx = jax.random.randint(k_idx, (args.batch_size,), 0, n_train)
        x = augment(k_aug, xs[idx])
        loss, grads = jax.value_and_grad(loss_fn)(params, x, ys[idx])
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for step in range(args.steps):
        params, opt_state, loss = train_step(params, opt_state, jnp.int32(step))
        if (step + 1) % 500 == 0 or step + 1 == args.steps:
            print(f"step {step + 1:5d}  loss {float(loss):.4f}  ({time.time() - t0:.0f} s)", flush=True)

    clf = features.DigitsClassifier(params=params, module=model)
    train_acc = float(np.mean(clf.predict(x_train) == y_train))
    test_acc = float(np.mean(clf.predict(x_test) == y_test))
    print(f"train accuracy {train_acc:.4f}   test accuracy {test_acc:.4f} ({x_test.shape[0]} held-out images)")

    meta = {
        "test_accuracy": np.float32(test_acc),
        "train_accuracy": np.float32(train_acc),
        "seed": np.int64(args.seed),
        "steps": np.int64(args.steps),
        "data": np.asarray("jaxdiff.data digits 16x16, train split (90 %); test = the other 10 %"),
    }
    if args.config is not None:
        meta["data"] = np.asarray(f"{name}, train split; test = split {str(config.data.eval_split)!r}")
        meta["source"] = np.asarray(name)
        meta["num_classes"] = np.int64(num_classes)
    features.save_weights_npz(args.out, params, meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.0f} KB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
