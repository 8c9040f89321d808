"""The reverse loop: N predictor–corrector steps over [t_N = T > … > t_0 = 0] as one ``lax.scan`` under ``jax.jit``.

    output      = denoiser(params, x_t, t)                                       # the network, pure
    x̂0, ε̂      = parameterization.predict(process, prediction, output, x_t, t)   # predictor
    x_{t_prev}  = corrector(process, x_t, x̂0, ε̂, t, t_prev, key)                  # corrector

A stateful corrector (``Corrector.init_state``) carries its state in the scan and may call the network again.
The last step (t_prev = 0) returns x̂0 itself. Shapes: x_T (B, H, W, C); t int32 (B,).

With a known region (``known=(x0_known, mask)``: inpainting, score_sde's PC inpainting and RePaint) the same loop
runs over (t, t_next) pairs (:func:`jaxdiff.sampling.inpainting.repaint_pairs`): after every reverse step the
known pixels (mask ≥ 0.5) are replaced by a forward sample x̃_{t_next} ~ q(x_{t_next} | x0_known) (x0_known
itself at t_next = 0), and a pair that goes up (RePaint's jumps) renoises x_{t_up} ~ q(x_{t_up} | x_t) with no
network call.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiff.processes import Process
from jaxdiff.parameterization import predict
from jaxdiff.sampling.correctors import CORRECTORS, check_corrector
from jaxdiff.checks import is_int
from jaxdiff.sampling.steps import _resolve_timesteps

__all__ = ["SampleResult", "sample_loop", "sample_loop_jit", "sample", "known_region_loop", "renoise",
           "check_known_region", "known_region_needs"]

Array = jnp.ndarray


class SampleResult(NamedTuple):
    """``x0``: (B, H, W, C). ``trajectory``: None, or dict(t=(M,), x_t=(M, B, H, W, C), x0_hat=(M, B, H, W, C))."""

    x0: Array
    trajectory: Optional[dict]


def sample_loop(
    denoiser: Callable[[Any, Array, Array], Array],
    params: Any,
    key: jax.Array,
    x_T: Array,
    timesteps: Array,
    *,
    process: Process,
    corrector: str = "ddim",
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    aux: Any = None,
    return_every: int = 0,
) -> SampleResult:
    """The reverse loop as one ``lax.scan`` over the N step pairs (t_k, t_{k−1}) of ``timesteps`` (N + 1,).

    Traceable and unvalidated: use :func:`sample` (validates, then runs :data:`sample_loop_jit`). Step i
    (0-based, from t = timesteps[0]) uses the key ``fold_in(key, i)``. With ``return_every = k > 0`` the
    trajectory holds the state after steps k, 2k, … and after the last step (M = ⌈N/k⌉ frames): ``t`` the
    timestep reached (t_prev), ``x_t`` the state there, ``x0_hat`` the prediction the step made. x_T itself is
    not a frame. Only M frames are stored: an outer scan over chunks of k steps runs an inner scan.
    """
    entry = CORRECTORS[corrector]  # unvalidated: sample() checked it
    corr = entry.fn
    eta = 0.0 if eta is None else eta  # None: η = 0 known when tracing (no noise draw is compiled)
    ts = jnp.asarray(timesteps, jnp.int32)
    n = ts.shape[0] - 1
    batch = x_T.shape[0]

    def body(carry, inp):
        x, _ = carry
        i, t, t_prev = inp
        tb = jnp.full((batch,), t, jnp.int32)
        tpb = jnp.full((batch,), t_prev, jnp.int32)
        out = denoiser(params, x, tb)
        x0_hat, eps_hat = predict(process, prediction, out, x, tb, clip=clip, aux=aux)
        x0_hat = x0_hat.astype(x.dtype)
        x_prev = corr(process, x, x0_hat, eps_hat.astype(x.dtype), tb, tpb, jax.random.fold_in(key, i), eta=eta, aux=aux)
        return (x_prev.astype(x.dtype), x0_hat), None

    def network(x, tb):
        """The network and predictor at (x, t (B,)): what a stateful corrector calls for extra evaluations."""
        x0_hat, eps_hat = predict(process, prediction, denoiser(params, x, tb), x, tb, clip=clip, aux=aux)
        return x0_hat.astype(x.dtype), eps_hat.astype(x.dtype)

    def stateful_body(carry, inp):
        x, _, state = carry
        i, t, t_prev = inp
        tb = jnp.full((batch,), t, jnp.int32)
        tpb = jnp.full((batch,), t_prev, jnp.int32)
        x0_hat, eps_hat = network(x, tb)
        x_prev, state = corr(process, x, x0_hat, eps_hat, tb, tpb, jax.random.fold_in(key, i), eta=eta, aux=aux,
                             state=state, predict=network)
        return (x_prev.astype(x.dtype), x0_hat, state), None

    def run(carry, steps):
        return lax.scan(stateful_body if entry.stateful else body, carry, steps)[0]

    steps = (jnp.arange(n, dtype=jnp.int32), ts[:-1], ts[1:])
    carry = (x_T, jnp.zeros_like(x_T))
    if entry.stateful:  # the corrector's state rides in the same scan's carry
        carry = carry + (entry.init_state(x_T),)
    if not return_every:
        return SampleResult(run(carry, steps)[0], None)

    k = int(return_every)
    n_chunks, rest = divmod(n, k)
    frames_t, frames_x, frames_x0 = [], [], []
    if n_chunks:
        head = jax.tree.map(lambda a: a[: n_chunks * k].reshape(n_chunks, k), steps)

        def chunk(c, chunk_steps):
            c = run(c, chunk_steps)
            return c, (c[0], c[1])

        carry, (xs, x0s) = lax.scan(chunk, carry, head)
        frames_t.append(ts[k : n_chunks * k + 1 : k])
        frames_x.append(xs)
        frames_x0.append(x0s)
    if rest:
        carry = run(carry, jax.tree.map(lambda a: a[n_chunks * k :], steps))
        frames_t.append(ts[-1:])
        frames_x.append(carry[0][None])
        frames_x0.append(carry[1][None])
    traj = dict(
        t=jnp.concatenate(frames_t),
        x_t=jnp.concatenate(frames_x),
        x0_hat=jnp.concatenate(frames_x0),
    )
    return SampleResult(carry[0], traj)


def renoise(process: Process, x_t: Array, t, t_up, key: jax.Array) -> Array:
    """A draw of x_{t_up} ~ q(x_{t_up} | x_t) = N(α_{t_up|t} x_t, σ²_{t_up|t} I) for D = identity, t ≤ t_up ((B,) or
    scalars); on a VP schedule N(√(ᾱ_{t_up}/ᾱ_t) x_t, (1 − ᾱ_{t_up}/ᾱ_t) I)."""
    from jaxdiff.processes import bcast

    log_g, var = process.schedule.transition(jnp.asarray(t_up, jnp.int32), jnp.asarray(t, jnp.int32))
    scale = bcast(jnp.exp(0.5 * log_g), x_t).astype(x_t.dtype)
    std = bcast(jnp.sqrt(var), x_t).astype(x_t.dtype)
    return scale * x_t + std * jax.random.normal(key, x_t.shape, x_t.dtype)


def known_region_loop(denoiser, params, key, x_T, pairs, known, *, process, corrector, prediction, clip, eta, aux,
                      return_every):
    """:func:`sample_loop` with a known region: one ``lax.scan`` over ``pairs`` (K, 2) (module docstring).

    Pair p uses k_p = fold_in(key, p): a down pair gives k_p to the corrector (as the plain loop does at step p)
    and fold_in(k_p, 1) to x̃_{t_next}; an up pair renoises with k_p. x_T's known pixels are first replaced by x̃
    at pairs[0, 0] drawn with fold_in(key, K). So with an all-zero mask and no jumps the result is the plain loop's.
    ``return_every`` = 1: the state after every pair (trajectory t = pairs[:, 1]).
    """
    entry = CORRECTORS[corrector]
    corr = entry.fn
    eta = 0.0 if eta is None else eta  # as in sample_loop
    x0_known, mask = known
    pairs = jnp.asarray(pairs, jnp.int32)
    n_pairs = pairs.shape[0]
    batch = x_T.shape[0]
    dtype = x_T.dtype
    keep = jnp.broadcast_to(jnp.asarray(mask) > 0.5, x_T.shape)
    x0_known = jnp.asarray(x0_known, dtype)

    def forward_known(t, k):
        x = process.sample(x0_known, jnp.full((batch,), t, jnp.int32), k, aux).astype(dtype)
        return jnp.where(t == 0, x0_known, x)

    def network(x, tb):
        x0_hat, eps_hat = predict(process, prediction, denoiser(params, x, tb), x, tb, clip=clip, aux=aux)
        return x0_hat.astype(x.dtype), eps_hat.astype(x.dtype)

    def down(carry, t, t_next, k):
        x, _, state = carry
        tb = jnp.full((batch,), t, jnp.int32)
        tnb = jnp.full((batch,), t_next, jnp.int32)
        x0_hat, eps_hat = network(x, tb)
        if entry.stateful:
            x_rev, state = corr(process, x, x0_hat, eps_hat, tb, tnb, k, eta=eta, aux=aux, state=state,
                                predict=network)
        else:
            x_rev = corr(process, x, x0_hat, eps_hat, tb, tnb, k, eta=eta, aux=aux)
        x_new = jnp.where(keep, forward_known(t_next, jax.random.fold_in(k, 1)), x_rev.astype(dtype))
        return x_new, x0_hat, state

    def up(carry, t, t_next, k):
        x, x0_hat, state = carry
        return renoise(process, x, t, t_next, k).astype(dtype), x0_hat, state

    def body(carry, inp):
        p, t, t_next = inp
        carry = lax.cond(t_next < t, down, up, carry, t, t_next, jax.random.fold_in(key, p))
        return carry, ((carry[0], carry[1]) if return_every else None)

    x = jnp.where(keep, forward_known(pairs[0, 0], jax.random.fold_in(key, n_pairs)), x_T)
    state = entry.init_state(x_T) if entry.stateful else ()
    carry, frames = lax.scan(body, (x, jnp.zeros_like(x_T), state),
                             (jnp.arange(n_pairs, dtype=jnp.int32), pairs[:, 0], pairs[:, 1]))
    traj = dict(t=pairs[:, 1], x_t=frames[0], x0_hat=frames[1]) if return_every else None
    return SampleResult(carry[0], traj)


#: :func:`sample_loop` under ``jax.jit``. Static: denoiser and process (hashed by identity: define them once,
#: a fresh lambda/partial per call recompiles), corrector, prediction, clip, return_every. Traced: params,
#: key, x_T, the timesteps *values* (their length is static), eta, aux. ``eta=None`` is η = 0 known when
#: tracing: its program has no noise term, so no Gaussian draw per step (:func:`sample` passes it for η = 0;
#: every η > 0 shares the other program).
sample_loop_jit = jax.jit(
    sample_loop, static_argnames=("denoiser", "process", "corrector", "prediction", "clip", "return_every")
)
known_region_loop_jit = jax.jit(
    known_region_loop, static_argnames=("denoiser", "process", "corrector", "prediction", "clip", "return_every")
)


def known_region_needs(process: Process) -> Optional[str]:
    """None when a known region (inpainting) works with ``process``, else why not (D = identity and σ_t > 0)."""
    if process.identity and process.noisy:
        return None
    hint = (" (its D_t is a degradation: restore degraded images with sample.py --mode=restore, "
            "jaxdiff.sampling.restoration)" if not process.identity else "")
    return (f"inpainting with a known region needs D = identity and σ_t > 0 (known pixels follow "
            f"q(x_t | x0) = N(α_t x0, σ_t²)); got {process.describe()}{hint}")


def check_known_region(process: Process, x_T, known, *, corrector: str, jumps) -> tuple:
    """``known`` = (x0_known, mask) checked against x_T and the process; ValueError naming what is wrong."""
    why = known_region_needs(process)
    if why is not None:
        raise ValueError(why)
    if not isinstance(known, (tuple, list)) or len(known) != 2:
        raise ValueError("known must be a pair (x0_known, mask)")
    x0_known, mask = known
    shape = tuple(x_T.shape)
    if tuple(getattr(x0_known, "shape", ())) != shape:
        raise ValueError(f"x0_known must have x_T's shape {shape}, got {getattr(x0_known, 'shape', None)}")
    mshape = tuple(np.shape(mask))
    try:
        ok = len(mshape) == 4 and np.broadcast_shapes(mshape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {mshape} does not broadcast to the images' {shape}; "
                         "give (B, H, W, 1), (B, H, W, C) or (1, H, W, 1)")
    if jumps is not None and CORRECTORS[corrector].stateful:
        raise ValueError(f"corrector {corrector!r} carries a history between steps, which RePaint's jumps back up "
                         "would break; use a one-step corrector (ddim, ddpm, euler, cold_naive) with jumps")
    return x0_known, mask


def _check_number(name, v, *, allow_traced=True):
    if allow_traced and isinstance(v, jax.core.Tracer):
        return
    if isinstance(v, (jax.Array, np.ndarray)) and np.ndim(v) == 0:
        v = float(v)
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def sample(
    denoiser: Callable[[Any, Array, Array], Array],
    params: Any,
    key: jax.Array,
    x_T: Array,
    *,
    process: Process,
    corrector: str = "ddim",
    timesteps: Union[None, int, Sequence[int], np.ndarray, Array] = None,
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    aux: Any = None,
    return_every: int = 0,
    known: Optional[tuple] = None,
    jumps: Optional[tuple[int, int]] = None,
) -> SampleResult:
    """Runs the reverse process from x_T to x0 as one jitted XLA program; returns ``SampleResult(x0, trajectory)``.

    denoiser(params, x_t (B, H, W, C), t int32 (B,)) -> network output (ε, x0 or v per ``prediction``); pure.
    timesteps: None (every step T … 0), an int N (``timesteps(T, N)``, linear spacing) or a sequence
      [t_N ≤ T > … > 0]. Only its length is compiled in; new values of the same length reuse the program.
    clip: bound x̂0 to [−clip, clip]; None or 0 turns it off.
    eta: DDIM's η ≥ 0 (other correctors ignore it).
    aux: the process's per-example randomness (``process.sample_aux``), if any.
    return_every: k > 0 also returns every k-th state and prediction (see :func:`sample_loop`).
    known: (x0_known (B, H, W, C), mask broadcastable to it): keep the pixels where mask ≥ 0.5 (inpainting);
      jumps: RePaint's (j, r) with it (N + (r − 1)·j·⌊(N − 1)/j⌋ network calls). With a known region the
      trajectory (return_every = 1) holds the state after every (t, t_next) pair.
    A batch sharded over a ('data',) mesh stays sharded; the result does not depend on the device count.
    Bad arguments raise ValueError before anything is traced.
    """
    if not isinstance(process, Process):
        raise ValueError(f"process must be a jaxdiff.processes.Process, got {type(process).__name__}")
    if not callable(denoiser):
        raise ValueError(f"denoiser must be a function (params, x_t, t) -> output, got {type(denoiser).__name__}")
    check_corrector(corrector, process)
    process.check_prediction(prediction, field="prediction")
    _check_number("eta", eta)
    if not isinstance(eta, jax.core.Tracer):
        # η = 0 compiles a program without the noise draw (about a third less compile time); any other η is one
        # traced float32 scalar whatever the caller passed: no retrace on int vs float or on a new value
        eta = float(eta) or None
    if clip is not None:
        _check_number("clip", clip, allow_traced=False)
        clip = float(clip) if clip > 0 else None
    if not is_int(return_every) or return_every < 0:
        raise ValueError(f"return_every must be an integer >= 0 (0: no trajectory), got {return_every!r}")
    if getattr(x_T, "ndim", None) != 4:
        raise ValueError(f"x_T must be a 4-D (B, H, W, C) array, got shape {getattr(x_T, 'shape', type(x_T).__name__)}")
    ts = _resolve_timesteps(timesteps, process.T)
    if known is not None or jumps is not None:
        from jaxdiff.sampling.inpainting import check_jumps, repaint_pairs

        if known is None:
            raise ValueError("jumps (RePaint's resampling) need a known region: pass known=(x0_known, mask)")
        if isinstance(ts, jax.core.Tracer):
            raise ValueError("with a known region, timesteps must be concrete (the pairs are built on the host)")
        known = check_known_region(process, x_T, known, corrector=corrector, jumps=jumps)
        if return_every not in (0, 1):
            raise ValueError(f"with a known region return_every must be 0 or 1 (the state after every pair), "
                             f"got {return_every!r}")
        pairs = repaint_pairs(ts, check_jumps(jumps, len(ts) - 1))
        return known_region_loop_jit(denoiser, params, key, x_T, pairs, known, process=process, corrector=corrector,
                                     prediction=prediction, clip=clip, eta=eta, aux=aux,
                                     return_every=int(return_every))
    return sample_loop_jit(
        denoiser,
        params,
        key,
        x_T,
        ts,
        process=process,
        corrector=corrector,
        prediction=prediction,
        clip=clip,
        eta=eta,
        aux=aux,
        return_every=int(return_every),
    )
