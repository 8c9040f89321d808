"""The reverse loop: N predictor–corrector steps over [t_N = T > … > t_0 = 0] as one ``lax.scan`` under ``jax.jit``.

    output      = denoiser(params, x_t, t)                                       # the network, pure
    x̂0, ε̂      = parameterization.predict(process, prediction, output, x_t, t)   # predictor
    x_{t_prev}  = corrector(process, x_t, x̂0, ε̂, t, t_prev, key)                  # corrector

A stateful corrector (``Corrector.init_state``) carries its state in the scan and may call the network again.
The last step (t_prev = 0) returns x̂0 itself. Shapes: x_T (B, H, W, C); t int32 (B,).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiff.forward import ForwardProcess
from jaxdiff.parameterization import predict
from jaxdiff.sampling.correctors import CORRECTORS, check_corrector
from jaxdiff.checks import is_int
from jaxdiff.sampling.steps import _resolve_timesteps

__all__ = ["SampleResult", "sample_loop", "sample_loop_jit", "sample"]

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
    process: ForwardProcess,
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


#: :func:`sample_loop` under ``jax.jit``. Static: denoiser and process (hashed by identity: define them once,
#: a fresh lambda/partial per call recompiles), corrector, prediction, clip, return_every. Traced: params,
#: key, x_T, the timesteps *values* (their length is static), eta, aux.
sample_loop_jit = jax.jit(
    sample_loop, static_argnames=("denoiser", "process", "corrector", "prediction", "clip", "return_every")
)


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
    process: ForwardProcess,
    corrector: str = "ddim",
    timesteps: Union[None, int, Sequence[int], np.ndarray, Array] = None,
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    aux: Any = None,
    return_every: int = 0,
) -> SampleResult:
    """Runs the reverse process from x_T to x0 as one jitted XLA program; returns ``SampleResult(x0, trajectory)``.

    denoiser(params, x_t (B, H, W, C), t int32 (B,)) -> network output (ε, x0 or v per ``prediction``); pure.
    timesteps: None (every step T … 0), an int N (``timesteps(T, N)``, linear spacing) or a sequence
      [t_N ≤ T > … > 0]. Only its length is compiled in; new values of the same length reuse the program.
    clip: bound x̂0 to [−clip, clip]; None or 0 turns it off.
    eta: DDIM's η ≥ 0 (other correctors ignore it).
    aux: the process's per-example randomness (``process.sample_aux``), if any.
    return_every: k > 0 also returns every k-th state and prediction (see :func:`sample_loop`).
    A batch sharded over a ('data',) mesh stays sharded; the result does not depend on the device count.
    Bad arguments raise ValueError before anything is traced.
    """
    if not isinstance(process, ForwardProcess):
        raise ValueError(f"process must be a jaxdiff.forward.ForwardProcess, got {type(process).__name__}")
    if not callable(denoiser):
        raise ValueError(f"denoiser must be a function (params, x_t, t) -> output, got {type(denoiser).__name__}")
    check_corrector(corrector, process)
    process.check_prediction(prediction, field="prediction")
    _check_number("eta", eta)
    if not isinstance(eta, jax.core.Tracer):
        eta = float(eta)  # one traced float32 scalar whatever the caller passed: no retrace on int vs float
    if clip is not None:
        _check_number("clip", clip, allow_traced=False)
        clip = float(clip) if clip > 0 else None
    if not is_int(return_every) or return_every < 0:
        raise ValueError(f"return_every must be an integer >= 0 (0: no trajectory), got {return_every!r}")
    if getattr(x_T, "ndim", None) != 4:
        raise ValueError(f"x_T must be a 4-D (B, H, W, C) array, got shape {getattr(x_T, 'shape', type(x_T).__name__)}")
    ts = _resolve_timesteps(timesteps, process.T)
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
