"""Reverse-time sampling: timestep sequences, correctors and the jitted predictor–corrector loop.

One reverse step from x_t to x_{t_prev} (t > t_prev, both in {0, …, T}):

    output      = denoiser(params, x_t, t)                          # the network, pure
    x̂0, ε̂      = parameterization.predict(process, prediction, output, x_t, t)   # predictor
    x_{t_prev}  = corrector(process, x_t, x̂0, ε̂, t, t_prev, key)     # corrector

over a timestep sequence [t_N = T > … > t_1 > t_0 = 0], so the network runs N times. The last step
(t_prev = 0) always returns x̂0 itself, with no noise.

Correctors (registry :data:`CORRECTORS`, keyed by the config names), with ᾱ = ᾱ_t, ᾱ' = ᾱ_{t_prev}:

* ``ddpm``  ancestral step from q(x_{t_prev} | x_t, x̂0), for any t_prev < t using α = ᾱ/ᾱ', β = 1 − α:
  mean = β √ᾱ' / (1 − ᾱ) · x̂0 + (1 − ᾱ') √α / (1 − ᾱ) · x_t,  variance = β (1 − ᾱ') / (1 − ᾱ)
  (for t_prev = t − 1 these are the schedule's posterior coefficients).
* ``ddim``  x_{t_prev} = √ᾱ' x̂0 + √(1 − ᾱ' − σ²) ε̂ + σ z,  σ = η √((1 − ᾱ')/(1 − ᾱ)) √(1 − ᾱ/ᾱ')
  (Song et al. 2021; η = 0 deterministic, η = 1 the DDPM posterior variance).
* ``cold_naive``     x_{t_prev} = F_{t_prev}(x̂0) (+ σ_{t_prev} z when the process is noisy)  (Bansal et al. Alg. 1).
* ``cold_improved``  x_{t_prev} = x_t − F_t(x̂0) + F_{t_prev}(x̂0)                             (Bansal et al. Alg. 2).

``ddpm`` and ``ddim`` need a :class:`~jaxdiff.forward.GaussianProcess`; the cold correctors work with any
process (for the Gaussian one F_t(x0) = √ᾱ_t x0). Noise is always z = ``jax.random.normal(key, x_t.shape)``:
drawn at the full (global) shape, so a batch sharded over any number of devices gets the same numbers.

Shapes: images (B, H, W, C); t, t_prev int32 (B,); schedule arrays (T + 1,) gathered by t.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiff.forward import ColdProcess, ForwardProcess, GaussianProcess, bcast
from jaxdiff.parameterization import PREDICTIONS, predict

__all__ = [
    "SPACINGS",
    "timesteps",
    "validate_timesteps",
    "CORRECTORS",
    "register_corrector",
    "make_corrector",
    "check_corrector",
    "posterior_coefficients",
    "ddim_sigma",
    "ddpm",
    "ddim",
    "cold_naive",
    "cold_improved",
    "SampleResult",
    "sample_loop",
    "sample_loop_jit",
    "sample",
]

Array = jnp.ndarray

# --------------------------------------------------------------------------------------------------
# Timestep sequences
# --------------------------------------------------------------------------------------------------

SPACINGS = ("linear", "quadratic", "trailing")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def timesteps(T: int, num_steps: Optional[int] = None, *, spacing: str = "linear") -> np.ndarray:
    """The sequence [t_N = T > t_{N−1} > … > t_1 > t_0 = 0] (int32, shape (N + 1,)): N network calls.

    ``num_steps`` N ∈ {1, …, T}; None or 0 means every step (N = T, the sequence T, T − 1, …, 0).

    spacing (u_k = k / N, k = 0 … N, returned reversed):
      * ``linear``     t_k = k + round((T − N) u_k)     ≈ k T / N, uniform;
      * ``quadratic``  t_k = k + round((T − N) u_k²)    dense near t = 0, where the detail is made;
      * ``trailing``   t_k = T − (N − k) ⌊T/N⌋ (k ≥ 1), t_0 = 0: an integer stride anchored at T
        (Lin et al. 2024), the remainder absorbed by the final jump to 0.
    Writing t_k = k + (non-decreasing integers) keeps the sequence strictly monotone for every N ≤ T.
    """
    if not _is_int(T) or T < 1:
        raise ValueError(f"T (num_timesteps) must be an integer >= 1, got {T!r}")
    T = int(T)
    if num_steps is None or (_is_int(num_steps) and num_steps == 0):
        num_steps = T
    if not _is_int(num_steps) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in [1, T={T}] (or None/0 for all {T} steps), got {num_steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    n = int(num_steps)
    k = np.arange(n + 1, dtype=np.int64)
    u = k / n
    if spacing == "linear":
        ts = k + np.floor((T - n) * u + 0.5).astype(np.int64)
    elif spacing == "quadratic":
        ts = k + np.floor((T - n) * u * u + 0.5).astype(np.int64)
    else:
        ts = np.where(k == 0, 0, T - (n - k) * (T // n))
    return ts[::-1].astype(np.int32)


def validate_timesteps(ts, T: int, *, name: str = "timesteps") -> np.ndarray:
    """Checks a user-given sequence and returns it as int32 (N + 1,).

    Allowed: 1-D, at least 2 integer entries, strictly decreasing, ts[0] ≤ T, ts[-1] == 0.
    """
    arr = np.asarray(ts)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D sequence [t_N > … > t_0 = 0] with at least 2 entries, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype} ({arr.tolist()})")
    if np.any(np.diff(arr.astype(np.int64)) >= 0):
        raise ValueError(f"{name} must be strictly decreasing, got {arr.tolist()}")
    if arr[0] > T:
        raise ValueError(f"{name} must start at or below T={T}, got {int(arr[0])}")
    if arr[-1] != 0:
        raise ValueError(f"{name} must end at 0 (the clean image), got {int(arr[-1])}")
    return arr.astype(np.int32)


def _resolve_timesteps(ts, T: int):
    """None → every step; an int N → ``timesteps(T, N)``; a sequence → validated; a tracer → shape-checked."""
    if ts is None:
        return timesteps(T)
    if _is_int(ts):
        return timesteps(T, int(ts))
    if isinstance(ts, jax.core.Tracer):
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"timesteps must be 1-D with at least 2 entries, got shape {ts.shape}")
        return ts.astype(jnp.int32)
    return validate_timesteps(ts, T)


# --------------------------------------------------------------------------------------------------
# Gaussian step coefficients
# --------------------------------------------------------------------------------------------------


def _log_alphas_cumprod(schedule):
    """log ᾱ_t as a float32 pair (hi, lo) with hi + lo ≈ the float64 value.

    Differences log ᾱ_t − log ᾱ_{t'} then keep ~1e-7 relative accuracy even where ᾱ_t ≈ ᾱ_{t'} ≈ 1
    (small t) or ≈ 0 (large t), where 1 − ᾱ_t / ᾱ_{t'} from float32 ᾱ loses 3–4 digits. Falls back to
    float32 when the schedule arrays are traced (not constants).
    """
    betas = schedule.betas
    if isinstance(betas, jax.core.Tracer):
        return jnp.cumsum(jnp.log1p(-betas)), jnp.zeros_like(betas)
    with np.errstate(divide="ignore"):
        log_ab = np.cumsum(np.log1p(-np.asarray(betas, np.float64)))
    hi = log_ab.astype(np.float32)
    lo = np.where(np.isfinite(hi), log_ab - hi.astype(np.float64), 0.0).astype(np.float32)
    return jnp.asarray(hi), jnp.asarray(lo)


def posterior_coefficients(schedule, t, t_prev):
    """(c1, c2, var) of q(x_{t_prev} | x_t, x0) = N(c1 x0 + c2 x_t, var I) for any 0 ≤ t_prev < t.

    With α = ᾱ_t/ᾱ_{t_prev}, β = 1 − α:  c1 = β √ᾱ_{t_prev}/(1 − ᾱ_t),  c2 = (1 − ᾱ_{t_prev}) √α/(1 − ᾱ_t),
    var = β (1 − ᾱ_{t_prev})/(1 − ᾱ_t). t, t_prev int (B,) or scalars; returns float32 arrays of that shape.
    """
    t = jnp.asarray(t, jnp.int32)
    t_prev = jnp.asarray(t_prev, jnp.int32)
    hi, lo = _log_alphas_cumprod(schedule)
    log_alpha = (hi[t] - hi[t_prev]) + (lo[t] - lo[t_prev])  # log(ᾱ_t/ᾱ_{t_prev}) ≤ 0
    beta = -jnp.expm1(log_alpha)
    one_minus_ab = jnp.square(schedule.sqrt_one_minus_alphas_cumprod[t])
    one_minus_ab_prev = jnp.square(schedule.sqrt_one_minus_alphas_cumprod[t_prev])
    # t ≥ 1 so 1 − ᾱ_t > 0; the guard only protects unused lanes (e.g. padding with t = t_prev = 0).
    denom = jnp.where(one_minus_ab > 0, one_minus_ab, 1.0)
    c1 = beta * schedule.sqrt_alphas_cumprod[t_prev] / denom
    c2 = one_minus_ab_prev * jnp.exp(0.5 * log_alpha) / denom
    var = beta * one_minus_ab_prev / denom
    return c1, c2, var


def ddim_sigma(schedule, t, t_prev, eta=0.0):
    """σ = η √((1 − ᾱ_{t_prev})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t_prev}), i.e. σ² = η² · (DDPM posterior variance)."""
    _, _, var = posterior_coefficients(schedule, t, t_prev)
    return jnp.asarray(eta, jnp.float32) * jnp.sqrt(var)


# --------------------------------------------------------------------------------------------------
# Correctors
# --------------------------------------------------------------------------------------------------

#: name → corrector(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None) -> x_{t_prev}
CORRECTORS: dict[str, Callable[..., Array]] = {}
#: name → the process class the corrector needs
_REQUIRES: dict[str, type] = {}


def register_corrector(name: str, *, requires: type = ForwardProcess):
    """Decorator: registers ``fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None)``.

    ``requires`` is the process class the corrector works with; :func:`sample` refuses other processes
    before tracing. The function must return x̂0 where t_prev == 0 (see :func:`_finish`).
    """

    def deco(fn):
        CORRECTORS[name] = fn
        _REQUIRES[name] = requires
        return fn

    return deco


def make_corrector(name: str) -> Callable[..., Array]:
    """Looks a corrector up by its config name."""
    if name not in CORRECTORS:
        raise ValueError(f"corrector must be one of {sorted(CORRECTORS)}, got {name!r}")
    return CORRECTORS[name]


def check_corrector(name: str, process: ForwardProcess) -> None:
    """ValueError unless corrector ``name`` exists and works with ``process``."""
    make_corrector(name)
    req = _REQUIRES.get(name, ForwardProcess)
    if not isinstance(process, req):
        raise ValueError(
            f"corrector {name!r} needs a {req.__name__}, got a {type(process).__name__}; "
            f"for cold (non-Gaussian) processes use 'cold_improved' or 'cold_naive'"
        )


def _finish(x_prev, x0_hat, t_prev):
    """The last step (t_prev == 0) returns x̂0 exactly, per example."""
    return jnp.where(bcast(t_prev == 0, x0_hat), x0_hat, x_prev.astype(x0_hat.dtype))


def _noise(key, x):
    # Full global shape from one key: the values do not depend on how jit partitions the batch.
    return jax.random.normal(key, x.shape, x.dtype)


def _need_gaussian(name, process):
    if not isinstance(process, GaussianProcess):
        raise ValueError(
            f"corrector {name!r} needs a GaussianProcess, got a {type(process).__name__}; "
            "use 'cold_improved' or 'cold_naive' for cold processes"
        )


@register_corrector("ddpm", requires=GaussianProcess)
def ddpm(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Ancestral step: x_{t_prev} = c1 x̂0 + c2 x_t + √var z (see :func:`posterior_coefficients`)."""
    del eps_hat, eta, aux
    _need_gaussian("ddpm", process)
    c1, c2, var = posterior_coefficients(process.schedule, t, t_prev)
    cast = lambda v: bcast(v, x_t).astype(x_t.dtype)  # noqa: E731
    x_prev = cast(c1) * x0_hat + cast(c2) * x_t + cast(jnp.sqrt(var)) * _noise(key, x_t)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("ddim", requires=GaussianProcess)
def ddim(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """x_{t_prev} = √ᾱ' x̂0 + √(1 − ᾱ' − σ²) ε̂ + σ z (σ from :func:`ddim_sigma`; η > 1 clamps the root at 0)."""
    del x_t, aux
    _need_gaussian("ddim", process)
    s = process.schedule
    _, _, var = posterior_coefficients(s, t, t_prev)
    eta = jnp.asarray(eta, jnp.float32)
    sigma2 = jnp.square(eta) * var
    dir_coef = jnp.sqrt(jnp.maximum(jnp.square(s.sqrt_one_minus_alphas_cumprod[t_prev]) - sigma2, 0.0))
    cast = lambda v: bcast(v, x0_hat).astype(x0_hat.dtype)  # noqa: E731
    x_prev = cast(s.sqrt_alphas_cumprod[t_prev]) * x0_hat + cast(dir_coef) * eps_hat
    # η is traced: the noise term is always formed, and is exactly 0 for η = 0.
    x_prev = x_prev + cast(jnp.sqrt(sigma2)) * _noise(key, x0_hat)
    return _finish(x_prev, x0_hat, t_prev)


def _process_has_noise(process) -> bool:
    return not (isinstance(process, ColdProcess) and process.noise_std == 0)


@register_corrector("cold_naive")
def cold_naive(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Bansal et al. Algorithm 1: x_{t_prev} = F_{t_prev}(x̂0) + σ_{t_prev} z (z only for noisy processes)."""
    del x_t, eps_hat, t, eta
    x_prev = process.mean(x0_hat, t_prev, aux)
    if _process_has_noise(process):
        x_prev = x_prev + bcast(process.std(t_prev), x_prev).astype(x_prev.dtype) * _noise(key, x_prev)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("cold_improved")
def cold_improved(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Bansal et al. Algorithm 2: x_{t_prev} = x_t − F_t(x̂0) + F_{t_prev}(x̂0) (keeps x_t's residual and noise)."""
    del eps_hat, key, eta
    x_prev = x_t - process.mean(x0_hat, t, aux) + process.mean(x0_hat, t_prev, aux)
    return _finish(x_prev, x0_hat, t_prev)


# --------------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------------


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
    corr = make_corrector(corrector)
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

    def run(carry, steps):
        return lax.scan(body, carry, steps)[0]

    steps = (jnp.arange(n, dtype=jnp.int32), ts[:-1], ts[1:])
    carry = (x_T, jnp.zeros_like(x_T))
    if not return_every:
        return SampleResult(run(carry, steps)[0], None)

    k = int(return_every)
    n_chunks, rest = divmod(n, k)
    frames_t, frames_x, frames_x0 = [], [], []
    if n_chunks:
        head = jax.tree.map(lambda a: a[: n_chunks * k].reshape(n_chunks, k), steps)

        def chunk(c, chunk_steps):
            c = run(c, chunk_steps)
            return c, c

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
    if not isinstance(corrector, str) or corrector not in CORRECTORS:
        raise ValueError(f"corrector must be one of {sorted(CORRECTORS)}, got {corrector!r}")
    check_corrector(corrector, process)
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
    if not isinstance(process, GaussianProcess) and prediction != "x0":
        raise ValueError(f"prediction must be 'x0' for a {type(process).__name__} (ε and v need a Gaussian process), got {prediction!r}")
    _check_number("eta", eta)
    if not isinstance(eta, jax.core.Tracer):
        eta = float(eta)  # one traced float32 scalar whatever the caller passed: no retrace on int vs float
    if clip is not None:
        _check_number("clip", clip, allow_traced=False)
        clip = float(clip) if clip > 0 else None
    if not _is_int(return_every) or return_every < 0:
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
