"""The judge of generated images: confidence and class histogram, Fréchet/KID with the floor, nearest training image."""
import math

import numpy as np
import pytest

from jaxdiff import evaluation
from jaxdiff.data import load_source, normalize
from jaxdiff.evaluation import judge as judge_mod
from references import frechet64, kid64

IMG = 8


class TableClassifier:
    """A fake classifier with the shipped one's interface: image i (its pixel [0, 0, 0] holds i/100) gets
    the i-th row of a hand-written logits table; its features are its raw pixels."""

    def __init__(self, table):
        self.table = np.asarray(table, np.float32)

    def _index(self, images):
        return np.rint(np.asarray(images)[:, 0, 0, 0] * 100).astype(int)

    def logits(self, images):
        return self.table[self._index(images)]

    def features(self, images):
        x = np.asarray(images, np.float32)
        return x.reshape(x.shape[0], -1)


def indexed_images(idx, seed):
    """Images whose pixel [0, 0, 0] is i/100 (the fake classifier's index) and the rest seeded noise in [−1, 1]."""
    x = np.random.default_rng(seed).uniform(-1, 1, (len(idx), IMG, IMG, 1)).astype(np.float32)
    x[:, 0, 0, 0] = np.asarray(idx) / 100.0
    return x


# Hand-built logits for 3 classes. p_max = e^a / (e^a + 2) for a row (a, 0, 0) up to order:
# a = 5 → 0.987 (confident), a = 2 → 0.787 (not), a = 3 → 0.909 (confident).
A18 = math.log(18.5)  # p_max = 18.5/20.5 = 0.902: just above 0.9
TABLE = [
    [5, 0, 0],     # 0: class 0, confident
    [0, 5, 0],     # 1: class 1, confident
    [0, 2, 0],     # 2: class 1, not confident
    [A18, 0, 0],   # 3: class 0, confident (0.902)
    [3, 0, 0],     # 4: class 0, confident (0.909)
    [1, 1.5, 0],   # 5: class 1, not confident
    [2, 0, 0],     # 6: class 0, not confident
    [0, 0, 9],     # 7: class 2, confident
]


def test_confidence_and_histogram_against_hand_built_logits():
    s = judge_mod.confidence_stats(TABLE, 0.9)
    assert s["confident_fraction"] == 5 / 8  # rows 0, 1, 3, 4, 7
    assert s["class_counts"] == [4, 3, 1]
    assert s["class_shares"] == [0.5, 0.375, 0.125]
    assert s["smallest_class"] == 2 and s["smallest_class_share"] == 0.125 and s["classes_present"] == 3
    # a stricter threshold drops rows 3 (0.902) and 4 (0.909) only
    assert judge_mod.confidence_stats(TABLE, 0.95)["confident_fraction"] == 3 / 8
    # a class nobody picks: share 0, not present
    s = judge_mod.confidence_stats([[5, 0, 0], [4, 0, 0]], 0.9)
    assert s["class_counts"] == [2, 0, 0] and s["classes_present"] == 1 and s["smallest_class_share"] == 0.0


def test_judge_with_a_fake_classifier_against_references():
    clf = TableClassifier(TABLE)
    samples = indexed_images(np.arange(8), seed=1)
    real = indexed_images(np.tile(np.arange(8), 3)[:20], seed=2)
    train = indexed_images(np.arange(8), seed=3)  # as many as the samples: the floor takes all of them
    j = judge_mod.judge(samples, real=real, train=train, classifier=clf, seed=4, kid_subsets=5, feature_net="table")
    assert (j["num_samples"], j["num_real"], j["num_train"], j["feature_net"]) == (8, 20, 8, "table")
    assert j["confident_fraction"] == 5 / 8 and j["class_counts"] == [4, 3, 1]
    fs, fr, ft = (x.reshape(x.shape[0], -1).astype(np.float64) for x in (samples, real, train))
    np.testing.assert_allclose(j["frechet"], frechet64(fs, fr), rtol=1e-6)
    km, ks = kid64(fs, fr, num_subsets=5, subset_size=4, seed=4)  # subsets of min(1000, 8//2, 20//2) = 4
    assert j["kid_mean"] == pytest.approx(km, rel=1e-9) and j["kid_std"] == pytest.approx(ks, rel=1e-9)
    # the floor: the same counts with training images in place of the samples
    f = j["floor"]
    assert (f["num_a"], f["num_b"]) == (8, 20)
    np.testing.assert_allclose(f["frechet"], frechet64(ft, fr), rtol=1e-6)
    km, ks = kid64(ft, fr, num_subsets=5, subset_size=4, seed=4)
    assert f["kid_mean"] == pytest.approx(km, rel=1e-9)
    assert f["confident_fraction"] == 5 / 8 and f["smallest_class_share"] == 0.125  # same indices, same table


def brute_nearest(q, r):
    """Per query, min over references of √(mean over pixels of ((q+1)/2 − (r+1)/2)²), one pair at a time."""
    out = []
    for a in np.asarray(q, np.float64):
        best = np.inf
        for b in np.asarray(r, np.float64):
            best = min(best, np.sqrt(np.mean(((a + 1) / 2 - (b + 1) / 2) ** 2)))
        out.append(best)
    return np.array(out)


def test_nearest_rmse_against_brute_force():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, (13, 5, 4, 3)).astype(np.float32)
    r = rng.uniform(-1, 1, (29, 5, 4, 3)).astype(np.float32)
    r[7] = q[3]  # an exact copy: distance 0
    ref = brute_nearest(q, r)
    for chunk in (1, 4, 512, None):
        np.testing.assert_allclose(judge_mod.nearest_rmse(q, r, chunk=chunk), ref, rtol=1e-9, atol=1e-7)
    assert ref[3] == 0.0


def test_judge_nearest_train_fields_against_brute_force():
    clf = TableClassifier(TABLE)
    samples, real, train = (indexed_images(np.arange(8), seed=s) for s in (1, 2, 3))
    train = np.concatenate([train, samples[:2]])  # two memorised samples
    j = judge_mod.judge(samples, real=real, train=train, classifier=clf, kid_subsets=0)
    d, df = brute_nearest(samples, train), brute_nearest(real, train)
    assert d[0] == d[1] == 0.0
    np.testing.assert_allclose(j["nearest_train"]["mean"], d.mean(), atol=1e-7)
    np.testing.assert_allclose(j["nearest_train"]["p5"], np.percentile(d, 5), atol=1e-7)
    np.testing.assert_allclose(j["nearest_train_floor"]["mean"], df.mean(), atol=1e-7)
    assert "kid_mean" not in j and j["nearest_train"]["num"] == 8


@pytest.mark.parametrize("kw, match", [
    (dict(confidence=1.5), r"confidence must be a number in \(0, 1\], got 1.5"),
    (dict(confidence=0), r"confidence must be a number in \(0, 1\], got 0"),
    (dict(kid_subsets=-1), "kid_subsets must be an integer >= 0, got -1"),
    (dict(real=np.zeros((4, 4, 4, 1), np.float32)), "one image shape"),
    (dict(samples=np.zeros((3, IMG, IMG), np.float32)), r"samples must be NHWC images .* got shape \(3, 8, 8\)"),
    (dict(train=np.zeros((4, IMG, IMG, 1), np.uint8)), "train must be floats in \\[-1, 1\\], got dtype uint8"),
])
def test_bad_input_one_message(kw, match):
    args = dict(samples=indexed_images(np.arange(4), 0), real=indexed_images(np.arange(4), 1),
                train=indexed_images(np.arange(4), 2), classifier=TableClassifier(TABLE))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        judge_mod.judge(args.pop("samples"), **args)


def digits(split):
    src = load_source("digits", split=split, image_size=16, channels=1)
    return normalize(src.images)


def test_real_held_out_digits_pass_the_judge():
    """The plumbing on real data: held-out digits judged by the shipped classifier look like digits, cover
    every class, sit at the floor, and are no nearer the training set than other real digits are."""
    test, train = digits("test"), digits("train")
    rng = np.random.default_rng(0)
    perm = rng.permutation(train.shape[0])
    ref, pool = train[perm[:800]], train[perm[800:]]  # "held-out" reference and the searched training images
    j = judge_mod.judge(test, real=ref, train=pool, seed=0)
    assert j["confident_fraction"] >= 0.9
    assert j["classes_present"] == 10 and j["smallest_class_share"] >= 0.05
    assert j["frechet"] <= 1.5 * j["floor"]["frechet"] + 1.0, (j["frechet"], j["floor"])
    assert j["nearest_train"]["mean"] >= 0.7 * j["nearest_train_floor"]["mean"]
    # memorised samples show: training images judged against their own pool are at distance 0
    m = judge_mod.judge(pool[:180], real=ref, train=pool, seed=0, kid_subsets=0)
    assert m["nearest_train"]["mean"] < 1e-6 and m["nearest_train_floor"]["mean"] > 0.05


def test_markdown_of_a_judged_generation():
    clf = TableClassifier(TABLE)
    samples, real, train = (indexed_images(np.arange(8), seed=s) for s in (1, 2, 3))
    j = judge_mod.judge(samples, real=real, train=train, classifier=clf, kid_subsets=3, feature_net="table",
                        info={"network_calls": 20, "seconds": 1.25})
    gen = {"kind": "generation", "num_samples": 8, "num_real": 8, "feature_net": "table", "feature_dim": 64,
           "frechet": 1.0, "judge": j}
    md = evaluation.report_markdown({"generation": gen})
    assert "### The judge" in md
    head = next(line for line in md.splitlines() if line.startswith("| Fréchet ↓ | floor |"))
    assert "confident (p ≥ 0.9)" in head and "smallest class" in head and "nearest-train RMSE" in head
    assert "network calls" in head and "wall time" in head
    row = md.splitlines()[md.splitlines().index(head) + 2]
    assert "62.5 %" in row and "12.5 % (class 2)" in row and "| 20 | 1.25 |" in row
    assert "class histogram (argmax): 0: 4, 1: 3, 2: 1" in md
    # a judge dict on its own is a section too
    assert "## The judge" in evaluation.report_markdown({"judge": j})


def test_markdown_says_memorised_only_when_samples_are_far_nearer_the_training_set():
    def md_of(p5_samples, p5_real):
        samples, real, train = (indexed_images(np.arange(8), seed=s) for s in (1, 2, 3))
        j = judge_mod.judge(samples, real=real, train=train, classifier=TableClassifier(TABLE), kid_subsets=0)
        j = dict(j, nearest_train={"mean": p5_samples, "p5": p5_samples}, nearest_train_floor={"mean": p5_real, "p5": p5_real})
        return evaluation.report_markdown({"judge": j})

    assert "training images memorised" in md_of(0.01, 0.09)
    assert "no sign of memorising" in md_of(0.095, 0.09)
    assert "no sign of memorising" in md_of(0.16, 0.09)
