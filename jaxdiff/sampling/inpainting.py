"""Inpainting with a known region (score_sde's PC inpainting; RePaint, Lugmayr et al. 2022) for Gaussian processes.

After every corrector step the known pixels (mask m = 1) are replaced by a forward sample of the known image:

    x_{t'} = m ⊙ x̃_{t'} + (1 − m) ⊙ corrector(x_t, x̂0, ε̂, t, t'),    x̃_{t'} ~ q(x_{t'} | x0_known),  x̃_0 = x0_known

RePaint's resampling, ``jumps=(j, r)``: each segment of j steps is walked r times; the way back up renoises
x_{t_up} ~ q(x_{t_up} | x_t) = N(√(ᾱ_{t_up}/ᾱ_t) x_t, (1 − ᾱ_{t_up}/ᾱ_t) I) with no network call.
The (t, t_next) pairs are built on the host (:func:`repaint_pairs`) and run as one ``lax.scan`` under ``jax.jit``;
a ``lax.cond`` skips the network on the up pairs. Correctors: the stateless ``ddpm`` and ``ddim``.
Shapes: images (B, H, W, C); mask broadcastable to them, e.g. (B, H, W, 1); binarised at 0.5.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiff.checks import is_int
from jaxdiff.forward import ForwardProcess, GaussianProcess, bcast
from jaxdiff.parameterization import predict
from jaxdiff.sampling.correctors import CORRECTORS, _log_alphas_cumprod
from jaxdiff.sampling.loop import _check_number
from jaxdiff.sampling.steps import timesteps as make_timesteps
from jaxdiff.sampling.steps import validate_timesteps

__all__ = ["INPAINT_CORRECTORS", "InpaintResult", "check_jumps", "repaint_pairs", "down_steps", "renoise",
           "inpaint_loop", "inpaint_loop_jit", "inpaint", "check_inpaint_process", "check_inpaint_corrector"]

Array = jnp.ndarray

#: the correctors the known-region loop runs (stateless: one step sees only x_t, x̂0, ε̂)
INPAINT_CORRECTORS = ("ddpm", "ddim")


class InpaintResult(NamedTuple):
    """``x0`` (B, H, W, C); ``states``: None, or dict(t=(K,), x_t=(K, B, H, W, C)): the state after each pair."""

    x0: Array
    states: Optional[dict]


def check_inpaint_process(process) -> None:
    """ValueError unless ``process`` is a :class:`GaussianProcess` (a cold one is told to restore instead)."""
    if isinstance(process, GaussianProcess):
        return
    name = type(process).__name__
    hint = (" (its F_t is a degradation, not √ᾱ_t x0: restore degraded images with sample.py --mode=restore, "
            "jaxdiff.sampling.restoration)" if name == "ColdProcess" else "")
    raise ValueError(f"inpainting with a known region needs a GaussianProcess (known pixels follow "
                     f"q(x_t | x0) = N(√ᾱ_t x0, 1 − ᾱ_t)); got a {name}{hint}")


def check_inpaint_corrector(corrector: str, *, field: str = "corrector") -> str:
    """``corrector`` if the inpainting loop runs it (:data:`INPAINT_CORRECTORS`), else one ValueError."""
    if corrector not in INPAINT_CORRECTORS:
        raise ValueError(f"{field}={corrector!r}: inpainting runs the stateless correctors "
                         f"{list(INPAINT_CORRECTORS)}; pass one of them")
    return corrector


def check_jumps(jumps, num_steps: int, *, field: str = "jumps") -> Optional[tuple[int, int]]:
    """None, or (j, r) with integers j ≥ 1, r ≥ 1 and j < N = ``num_steps`` (else no segment to resample)."""
    if jumps is None:
        return None
    if (not isinstance(jumps, (tuple, list)) or len(jumps) != 2
            or not all(is_int(v) and v >= 1 for v in jumps)):
        raise ValueError(f"{field}={jumps!r}: expected two integers (j, r) >= 1: jump back j steps, walk each "
                         "segment r times")
    j, r = int(jumps[0]), int(jumps[1])
    if j >= num_steps:
        raise ValueError(f"{field}=({j}, {r}): the jump length j must be below the number of steps N={num_steps}")
    return j, r


def repaint_pairs(ts: Union[np.ndarray, Sequence[int]], jumps: Optional[tuple[int, int]] = None) -> np.ndarray:
    """The (t, t_next) pairs of the loop, int32 (K, 2), from the descending sequence ts = [t_N = T > … > t_0 = 0].

    Without jumps: (t_k, t_{k−1}) for k = N … 1. With (j, r), on the indices k of ts (RePaint's schedule, t shifted
    by one: its index i is our k = i + 1): the jump points are k = 1, 1 + j, 1 + 2j, … with k + j ≤ N; on reaching
    one the first r − 1 times, the next pair goes up to k + j (a renoise) and the walk descends again.
    Network calls (down pairs): N + (r − 1) · j · ⌊(N − 1)/j⌋.
    """
    ts = np.asarray(ts, np.int64)
    n = ts.shape[0] - 1
    at = lambda k: int(ts[n - k])  # noqa: E731  (t of index k)
    left = {}
    if jumps is not None:
        j, r = jumps
        left = {k: r - 1 for k in range(1, n - j + 1, j)}
    pairs, k = [], n
    while k > 0:
        pairs.append((at(k), at(k - 1)))
        k -= 1
        if left.get(k, 0) > 0:
            left[k] -= 1
            pairs.append((at(k), at(k + jumps[0])))
            k += jumps[0]
    return np.asarray(pairs, np.int32).reshape(-1, 2)


def down_steps(pairs) -> int:
    """The reverse steps of a pair list: its down pairs (t_next < t); the up pairs call no network, so its
    network calls are ``jaxdiff.sampling.network_calls(corrector, down_steps(pairs))``."""
    p = np.asarray(pairs)
    return int(np.sum(p[:, 1] < p[:, 0]))


def renoise(process: GaussianProcess, x_t: Array, t, t_up, key: jax.Array) -> Array:
    """A draw of x_{t_up} ~ q(x_{t_up} | x_t) = N(√(ᾱ_{t_up}/ᾱ_t) x_t, (1 − ᾱ_{t_up}/ᾱ_t) I), t ≤ t_up ((B,) or scalars)."""
    hi, lo = _log_alphas_cumprod(process.schedule)
    t = jnp.asarray(t, jnp.int32)
    t_up = jnp.asarray(t_up, jnp.int32)
    log_ratio = (hi[t_up] - hi[t]) + (lo[t_up] - lo[t])  # log(ᾱ_{t_up}/ᾱ_t) ≤ 0
    scale = bcast(jnp.exp(0.5 * log_ratio), x_t).astype(x_t.dtype)
    std = bcast(jnp.sqrt(-jnp.expm1(log_ratio)), x_t).astype(x_t.dtype)
    return scale * x_t + std * jax.random.normal(key, x_t.shape, x_t.dtype)


def inpaint_loop(
    denoiser: Callable[[Any, Array, Array], Array],
    params: Any,
    key: jax.Array,
    x_T: Array,
    x0_known: Array,
    mask: Array,
    pairs: Array,
    *,
    process: GaussianProcess,
    corrector: str = "ddim",
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    return_states: bool = False,
) -> InpaintResult:
    """The known-region loop as one ``lax.scan`` over ``pairs`` (K, 2); traceable, unvalidated (use :func:`inpaint`).

    Pair p uses k_p = fold_in(key, p): a down pair gives k_p to the corrector (as :func:`sample_loop` does at
    step p) and fold_in(k_p, 1) to x̃_{t'}; an up pair renoises with k_p. x_T's known pixels are first replaced
    by x̃_T drawn with fold_in(key, K). So with an all-zero mask and no jumps the result is ``sample_loop``'s.
    """
    corr = CORRECTORS[corrector].fn
    pairs = jnp.asarray(pairs, jnp.int32)
    n_pairs = pairs.shape[0]
    batch = x_T.shape[0]
    dtype = x_T.dtype
    known = jnp.broadcast_to(jnp.asarray(mask) > 0.5, x_T.shape)
    x0_known = jnp.asarray(x0_known, dtype)

    def forward_known(t, k):
        tb = jnp.full((batch,), t, jnp.int32)
        x = process.sample(x0_known, tb, k).astype(dtype)
        return jnp.where(t == 0, x0_known, x)

    def down(x, t, t_next, k):
        tb = jnp.full((batch,), t, jnp.int32)
        tnb = jnp.full((batch,), t_next, jnp.int32)
        out = denoiser(params, x, tb)
        x0_hat, eps_hat = predict(process, prediction, out, x, tb, clip=clip)
        x_rev = corr(process, x, x0_hat.astype(dtype), eps_hat.astype(dtype), tb, tnb, k, eta=eta, aux=None)
        return jnp.where(known, forward_known(t_next, jax.random.fold_in(k, 1)), x_rev.astype(dtype))

    def up(x, t, t_next, k):
        return renoise(process, x, t, t_next, k).astype(dtype)

    def body(x, inp):
        p, t, t_next = inp
        k = jax.random.fold_in(key, p)
        x_new = lax.cond(t_next < t, down, up, x, t, t_next, k)
        return x_new, (x_new if return_states else None)

    x = jnp.where(known, forward_known(pairs[0, 0], jax.random.fold_in(key, n_pairs)), x_T)
    x, states = lax.scan(body, x, (jnp.arange(n_pairs, dtype=jnp.int32), pairs[:, 0], pairs[:, 1]))
    return InpaintResult(x, dict(t=pairs[:, 1], x_t=states) if return_states else None)


#: :func:`inpaint_loop` under ``jax.jit``. Static: denoiser, process (by identity), corrector, prediction, clip,
#: return_states. Traced: params, key, x_T, x0_known, mask, the pair *values* (their count K is static), eta.
inpaint_loop_jit = jax.jit(
    inpaint_loop, static_argnames=("denoiser", "process", "corrector", "prediction", "clip", "return_states")
)


def _finite_nonneg(name, v):
    """``v`` as a float (a tracer passes through), after :func:`jaxdiff.sampling.loop._check_number`."""
    _check_number(name, v)
    return v if isinstance(v, jax.core.Tracer) else float(v)


def inpaint(
    denoiser: Callable[[Any, Array, Array], Array],
    params: Any,
    key: jax.Array,
    x_T: Array,
    x0_known: Array,
    mask: Array,
    *,
    process: ForwardProcess,
    corrector: str = "ddim",
    timesteps: Union[None, int, Sequence[int], np.ndarray] = None,
    jumps: Optional[tuple[int, int]] = None,
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    return_states: bool = False,
) -> InpaintResult:
    """Fills the pixels where ``mask`` < 0.5 from x_T (B, H, W, C), keeping x0_known where ``mask`` ≥ 0.5.

    denoiser(params, x_t, t) -> network output, as for :func:`jaxdiff.sampling.sample` (a guided denoiser with
    params (variables, labels, w) drops in). timesteps: None (every step), N or a sequence [t_N ≤ T > … > 0].
    jumps: RePaint's (j, r) or None; costs N + (r − 1)·j·⌊(N − 1)/j⌋ network calls (:func:`repaint_pairs`).
    The known pixels of the result are x0_known exactly. One jitted program per (K, shapes); bad arguments raise
    ValueError before anything is traced.
    """
    check_inpaint_process(process)
    if not callable(denoiser):
        raise ValueError(f"denoiser must be a function (params, x_t, t) -> output, got {type(denoiser).__name__}")
    check_inpaint_corrector(corrector)
    process.check_prediction(prediction, field="prediction")
    eta = _finite_nonneg("eta", eta)
    if clip is not None:
        clip = _finite_nonneg("clip", clip) or None
    shape = getattr(x_T, "shape", None)
    if getattr(x_T, "ndim", None) != 4:
        raise ValueError(f"x_T must be a 4-D (B, H, W, C) array, got shape {shape}")
    if tuple(getattr(x0_known, "shape", ())) != tuple(shape):
        raise ValueError(f"x0_known must have x_T's shape {tuple(shape)}, got {getattr(x0_known, 'shape', None)}")
    mshape = tuple(np.shape(mask))
    try:
        ok = len(mshape) == 4 and np.broadcast_shapes(mshape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {mshape} does not broadcast to the images' {tuple(shape)}; "
                         "give (B, H, W, 1), (B, H, W, C) or (1, H, W, 1)")
    T = int(process.T)
    if timesteps is None or (is_int(timesteps) and timesteps == 0):
        ts = make_timesteps(T)
    elif is_int(timesteps):
        ts = make_timesteps(T, int(timesteps))
    else:
        ts = validate_timesteps(timesteps, T)
    jumps = check_jumps(jumps, len(ts) - 1)
    return inpaint_loop_jit(denoiser, params, key, x_T, x0_known, mask, repaint_pairs(ts, jumps), process=process,
                            corrector=corrector, prediction=prediction, clip=clip, eta=eta,
                            return_states=bool(return_states))
