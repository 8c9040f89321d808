"""A generation prior p(x_T): the stored value :class:`Prior`, the registry of kinds and :func:`fit_prior`.

A prior is fitted once on images (NHWC in [−1, 1]) and kept as plain arrays, a ``kind`` string plus a dict of
NumPy arrays (npz without pickle, or JSON)::

    prior = fit_prior("blur_mean", train_images, seed=0, noise=0.002)
    x_T = prior.sample(key, 64)                        # (64, H, W, C) float32, jit-safe with n static
    prior2 = Prior.from_arrays(prior.to_arrays())      # same samples for the same key
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.registry import Registry

__all__ = ["Prior", "PriorKind", "PRIORS", "RENAMED_KINDS", "register_prior", "fit_prior"]


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
    """A fitted prior: ``kind`` names its entry in :data:`PRIORS`; ``arrays`` hold everything fitted.

    Every kind stores ``shape`` = (H, W, C) (int64). ``sample(key, n)`` returns (n, H, W, C) float32.
    """

    kind: str
    arrays: Mapping[str, np.ndarray]

    def __post_init__(self):
        if self.kind not in PRIORS:
            raise ValueError(f"prior kind {self.kind!r} is not registered; allowed: {sorted(PRIORS)}")
        missing = [k for k in PRIORS[self.kind].keys if k not in self.arrays]
        if missing:
            raise ValueError(f"prior {self.kind!r}: arrays lack {missing}; got {sorted(self.arrays)}")
        # Read-only copies: a Prior is a value that a sampler may hold on to.
        frozen = {}
        for k, v in self.arrays.items():
            a = np.array(v, copy=True)
            if a.dtype == object:
                raise ValueError(f"prior {self.kind!r}: array {k!r} has dtype object; only numeric arrays are stored")
            a.setflags(write=False)
            frozen[k] = a
        shape = frozen["shape"]
        if shape.shape != (3,) or shape.dtype.kind not in "iu" or np.any(shape < 1):
            raise ValueError(f"prior {self.kind!r}: 'shape' must hold (H, W, C) positive ints, got {shape!r}")
        object.__setattr__(self, "arrays", frozen)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one sample."""
        return tuple(int(s) for s in self.arrays["shape"])  # type: ignore[return-value]

    def sample(self, key: jax.Array, n: int) -> jnp.ndarray:
        """n draws of x_T, shape (n, H, W, C) float32. Jit-safe with ``n`` static."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"prior {self.kind!r}: n must be an integer >= 1, got {n!r}")
        # Integer arrays (shape, factor) fix the program and are static; float arrays are traced
        # arguments, so every prior of the same kind and sizes reuses one compiled sampler.
        static = tuple(
            (k, v.shape, tuple(v.ravel().tolist())) for k, v in sorted(self.arrays.items()) if v.dtype.kind in "iub"
        )
        floats = {k: v.astype(np.float32) for k, v in self.arrays.items() if v.dtype.kind not in "iub"}
        return _sample_jit(key, floats, kind=self.kind, n=int(n), static=static)

    def replace(self, **updates) -> "Prior":
        """A copy with some stored arrays replaced, e.g. ``prior.replace(noise=0.0)`` for perfect symmetry."""
        unknown = [k for k in updates if k not in self.arrays]
        if unknown:
            raise ValueError(f"prior {self.kind!r}: cannot replace {unknown}; stored arrays: {sorted(self.arrays)}")
        new = dict(self.arrays)
        for k, v in updates.items():
            v = np.asarray(v, dtype=self.arrays[k].dtype)
            if v.shape != self.arrays[k].shape:
                raise ValueError(f"prior {self.kind!r}: {k} must have shape {self.arrays[k].shape}, got {v.shape}")
            new[k] = v
        if "noise" in updates and not float(new["noise"]) >= 0.0:
            raise ValueError(f"prior {self.kind!r}: noise must be >= 0, got {float(new['noise'])!r}")
        return Prior(self.kind, new)

    # -- serialisation ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"kind": 0-d unicode array, **arrays}``: savable by ``np.savez`` and loadable without pickle."""
        out = {"kind": np.asarray(self.kind)}
        out.update({k: np.array(v) for k, v in self.arrays.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], kind: Optional[str] = None) -> "Prior":
        """Inverse of :meth:`to_arrays`. ``kind`` may be given separately (then ``arrays`` need no "kind")."""
        arrays = dict(arrays)
        stored = arrays.pop("kind", None)
        if kind is None:
            if stored is None:
                raise ValueError("Prior.from_arrays: no 'kind' in arrays and none passed")
            kind = str(np.asarray(stored).item())
        kind = RENAMED_KINDS.get(str(kind), str(kind))
        return cls(kind, {k: np.asarray(v) for k, v in arrays.items()})

    def to_json(self) -> str:
        """JSON text {"kind": ..., "arrays": {name: {"dtype", "shape", "data"}}} (exact for float32/64)."""
        enc = {
            k: {"dtype": v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in self.arrays.items()
        }
        return json.dumps({"kind": self.kind, "arrays": enc})

    @classmethod
    def from_json(cls, text: str) -> "Prior":
        d = json.loads(text)
        arrays = {
            k: np.asarray(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"]) for k, v in d["arrays"].items()
        }
        return cls(RENAMED_KINDS.get(d["kind"], d["kind"]), arrays)

    def save(self, path) -> None:
        """Writes :meth:`to_arrays` to an .npz file."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path) -> "Prior":
        with np.load(path, allow_pickle=False) as f:
            return cls.from_arrays({k: f[k] for k in f.files})


@functools.partial(jax.jit, static_argnames=("kind", "n", "static"))
def _sample_jit(key, floats, *, kind: str, n: int, static):
    arrays = dict(floats)
    arrays.update({k: np.asarray(vals).reshape(shape) for k, shape, vals in static})
    return PRIORS[kind].sample(arrays, key, n)



@dataclasses.dataclass(frozen=True)
class PriorKind:
    """fit: ``(images float64 (N,H,W,C) | None, *, shape, rng, **params) -> dict of arrays`` (incl. "shape").
    sample: ``(arrays, key, n) -> (n, H, W, C) float32``, traced under jit: integer arrays (shape,
    factor) arrive as NumPy constants, float arrays as float32 tracers. keys: arrays every prior holds.
    needs_data: whether fitting requires images (else a ``shape`` is enough)."""

    fit: Callable[..., dict]
    sample: Callable[..., jnp.ndarray]
    keys: tuple[str, ...]
    needs_data: bool = True


PRIORS: Registry[PriorKind] = Registry("prior kind")

#: kinds of stored priors that were renamed → their name now (prior.npz files of the old name still load)
RENAMED_KINDS = {"colour": "color"}


def register_prior(name: str, *, sample: Callable[..., jnp.ndarray], keys: tuple[str, ...], needs_data: bool = True):
    """Decorator on a fit function: registers ``PriorKind(fit, sample, keys, needs_data)`` under ``name``.

    A name registered twice raises (unregister it first from ``PRIORS``)."""

    def deco(fit):
        PRIORS.register(name, PriorKind(fit=fit, sample=sample, keys=("shape",) + tuple(keys), needs_data=needs_data))
        return fit

    return deco


def fit_prior(
    kind: str,
    images=None,
    *,
    key: Optional[jax.Array] = None,
    seed: int = 0,
    shape: Optional[tuple[int, int, int]] = None,
    **params,
) -> Prior:
    """Fits the prior registered as ``kind`` on ``images`` (N, H, W, C) in [−1, 1].

    ``key`` (a JAX key) or ``seed`` (an int) seeds the fit's randomness (mixture initialisation, bank
    subsampling); ``key`` wins when both are given. Data-free kinds (gaussian, color) accept
    ``shape=(H, W, C)`` instead of images. Unknown parameters raise a ValueError listing the allowed ones.
    """
    entry = PRIORS.get_or_raise(kind)
    allowed = _fit_params(entry.fit)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ValueError(f"prior {kind!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")

    x = None
    if images is not None:
        x = check_images(images, kind)
        if shape is not None and tuple(shape) != x.shape[1:]:
            raise ValueError(f"prior {kind!r}: shape={tuple(shape)} disagrees with the images' {x.shape[1:]}")
        shape = x.shape[1:]
    elif entry.needs_data:
        raise ValueError(f"prior {kind!r}: images (N, H, W, C) are required to fit it")
    elif shape is None:
        raise ValueError(f"prior {kind!r}: pass images or shape=(H, W, C)")
    shape = check_shape(shape, kind)

    if key is not None:
        seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"prior {kind!r}: seed must be an int, got {seed!r}")
    rng = np.random.default_rng(int(seed))

    arrays = entry.fit(x, shape=shape, rng=rng, **params)
    arrays["shape"] = np.asarray(shape, np.int64)
    return Prior(kind, arrays)


def _fit_params(fit) -> set[str]:
    return {
        n
        for n, p in inspect.signature(fit).parameters.items()
        if p.kind is p.KEYWORD_ONLY and n not in ("shape", "rng")
    }


def check_images(images, kind: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"prior {kind!r}: images must be NHWC (N, H, W, C), got shape {x.shape}")
    if x.shape[0] < 1 or min(x.shape[1:]) < 1:
        raise ValueError(f"prior {kind!r}: images must be non-empty, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"prior {kind!r}: images must be floats in [-1, 1], got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"prior {kind!r}: images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"prior {kind!r}: images must lie in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_shape(shape, kind: str) -> tuple[int, int, int]:
    try:
        s = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"prior {kind!r}: shape must be (H, W, C), got {shape!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"prior {kind!r}: shape must be (H, W, C) of positive ints, got {shape!r}")
    return s


def check_noise(noise, kind: str) -> np.ndarray:
    if not (isinstance(noise, (int, float, np.floating, np.integer)) and not isinstance(noise, bool)) or not (
        float(noise) >= 0.0 and np.isfinite(noise)
    ):
        raise ValueError(f"prior {kind!r}: noise must be a finite float >= 0, got {noise!r}")
    return np.asarray(float(noise), np.float64)


def add_noise(x: jnp.ndarray, arrays, key: jax.Array) -> jnp.ndarray:
    # noise = 0 adds exact zeros (0 · finite), so "perfect symmetry" stays exactly flat.
    return x + jnp.asarray(arrays["noise"], jnp.float32) * jax.random.normal(key, x.shape, jnp.float32)
