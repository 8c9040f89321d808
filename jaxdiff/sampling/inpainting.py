"""Inpainting with a known region (score_sde's PC inpainting; RePaint, Lugmayr et al. 2022): the pieces the one
reverse loop (:func:`jaxdiff.sampling.sample` with ``known=(x0_known, mask)``) uses, and :func:`inpaint`.

After every corrector step the known pixels (mask m = 1) are replaced by a forward sample of the known image:

    x_{t'} = m ⊙ x̃_{t'} + (1 − m) ⊙ corrector(x_t, x̂0, ε̂, t, t'),    x̃_{t'} ~ q(x_{t'} | x0_known),  x̃_0 = x0_known

RePaint's resampling, ``jumps=(j, r)``: each segment of j steps is walked r times; the way back up renoises
x_{t_up} ~ q(x_{t_up} | x_t) with no network call (:func:`jaxdiff.sampling.loop.renoise`). The (t, t_next) pairs
are built on the host (:func:`repaint_pairs`) and run as one ``lax.scan`` under ``jax.jit``; a ``lax.cond`` skips
the network on the up pairs. Any corrector that applies to the process runs (one with a history, e.g. dpmpp_2m,
not with jumps). The process needs D = identity and σ_t > 0.
Shapes: images (B, H, W, C); mask broadcastable to them, e.g. (B, H, W, 1); binarised at 0.5.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import is_int
from jaxdiff.processes import Process
from jaxdiff.sampling.loop import known_region_loop, renoise, sample

__all__ = ["InpaintResult", "check_jumps", "repaint_pairs", "down_steps", "renoise", "known_region_loop",
           "inpaint"]

Array = jnp.ndarray


class InpaintResult(NamedTuple):
    """``x0`` (B, H, W, C); ``states``: None, or dict(t=(K,), x_t=(K, B, H, W, C)): the state after each pair."""

    x0: Array
    states: Optional[dict]


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


def inpaint(
    denoiser: Callable[[Any, Array, Array], Array],
    params: Any,
    key: jax.Array,
    x_T: Array,
    x0_known: Array,
    mask: Array,
    *,
    process: Process,
    corrector: str = "ddim",
    timesteps: Union[None, int, Sequence[int], np.ndarray] = None,
    jumps: Optional[tuple[int, int]] = None,
    prediction: str = "eps",
    clip: Optional[float] = None,
    eta=0.0,
    return_states: bool = False,
) -> InpaintResult:
    """Fills the pixels where ``mask`` < 0.5 from x_T (B, H, W, C), keeping x0_known where ``mask`` ≥ 0.5:
    :func:`jaxdiff.sampling.sample` with ``known=(x0_known, mask)`` (and ``jumps``), its validation included.

    The known pixels of the result are x0_known exactly. ``return_states``: the state after every pair.
    """
    res = sample(denoiser, params, key, x_T, process=process, corrector=corrector, timesteps=timesteps,
                 prediction=prediction, clip=clip, eta=eta, return_every=1 if return_states else 0,
                 known=(x0_known, mask), jumps=jumps)
    states = None if res.trajectory is None else dict(t=res.trajectory["t"], x_t=res.trajectory["x_t"])
    return InpaintResult(res.x0, states)
