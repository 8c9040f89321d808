"""Probability-flow ODE solvers as correctors: fewer network calls for the same samples.

With α, σ at t, primes at t_prev (t' < t), λ = log(α/σ):

* ``dpmpp_2m`` DPM-Solver++(2M) (Lu et al. 2022): h = λ' − λ, r = h_prev/h, D = (1 + 1/(2r)) x̂0 − 1/(2r) x̂0_prev
  (first step: D = x̂0), x' = (σ'/σ) x − α'(e^{−h} − 1) D. State: (x̂0_prev, h_prev); h_prev = 0 before step 1.
  (At α = 0, flow matching's t = T, λ = −∞ and the step is first order: e^{−h} = 0.)
* ``euler`` (Karras et al. 2022) on z = x/c in r = σ/c: d = (z − x̂0)/r, z' = z + (r' − r) d = ρ z + (1 − ρ) x̂0,
  ρ = r'/r, with the schedule's ODE scale c (:meth:`NoiseSchedule.ode_variables`: c = α where α > 0 throughout —
  Karras's y = x/α, s = σ/α; c = α + σ for flow matching, where α_T = 0 and z = x, r = τ). (Unclipped, Euler is
  the one step ``ddim`` with η = 0 written as an ODE step; on a flow process both are the flow-matching Euler step.)
* ``heun``: Euler to t', the network again at t' (not when t' = 0), then the trapezoid rule on the ODE's exact
  form z' = ρ z + r' ∫_{r'}^{r} x̂0(u)/u² du with x̂0 linear in h = ln(r/r') between the two calls:
  z' = ρ z + (1 − ρ) x̂0 + φ (x̂0' − x̂0), φ = 1 − (1 − ρ)/h. N steps, 2N − 1 calls. Second order like Karras
  et al.'s Heun (z' = z + (r' − r)(d + d')/2, whose x̂0 term is φ_K = (r − r')/(2r'): the two agree to O(h²))
  but exact for a constant x̂0 at any step size: Karras's φ_K grows like r/r', so a step across a wide range
  of noise (r/r' = 23 at ddim's first step of three, linear spacing: φ_K = 11 against φ = 0.69) multiplies
  the change of x̂0 tenfold (docs/EVALUATION.md, "Heun against Euler"). ``heun_karras`` is Karras et al.'s
  Algorithm 1 as published (EDM's sampler with its ρ = 7 spacing).
* ``ddim_2m`` the one reverse step made second order for every process with a Gaussian posterior (D identity or
  DCT-diagonal, σ_t > 0): in the process's basis each coefficient is x = a x0 + σ ε with its own a = α_t d_t, so its
  probability-flow ODE is Lu et al.'s with λ = log(a/σ) per frequency, and DPM-Solver++(2M) runs per coefficient:
  u' = (σ'/σ) u − a'(e^{−h} − 1) D, h = λ' − λ, D = (1 + h/(2 h_prev)) û0 − h/(2 h_prev) û0_prev (first step, and
  any coefficient where h or h_prev is not finite and positive: D = û0, the first-order step, which is ``ddim``
  with η = 0). D = identity: dpmpp_2m. α = 1 and σ constant (heat with its small noise): u' = u + (d' − d) D,
  Algorithm 2 (TACoS) with x̂0 extrapolated. With η > 0 it is ``ddim``'s η step with D for û0:
  u' = ρ (σ'/σ) u + a'(1 − ρ e^{−h}) D + η √var z, ρ = √(1 − η² var/σ'²) (var: q(x_s | x_t, x0)'s, per frequency);
  η = 1 is SDE-DPM-Solver++(2M) (the midpoint form: var = σ'²(1 − e^{−2h}), so u' = (σ'/σ) e^{−h} u
  + a'(1 − e^{−2h}) D + σ'√(1 − e^{−2h}) z). The noise z is ddim's (the same key gives the same z).
  State: (û0 of the previous step in the basis, its t; −1 before step 1).
x̂0 is the denoiser (clipped when the sampler clips); ε̂ is not used. A step to t' = 0 returns x̂0.
Shapes: (B, H, W, C); t, t_prev int32 (B,).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxdiff.processes import bcast
from jaxdiff.sampling.correctors import _finish, _noise, eta_is_zero, register_corrector

__all__ = ["dpmpp_2m", "euler", "heun", "heun_karras", "ddim_2m", "probability_flow", "diagonal_flow"]


def probability_flow(process):
    """D = identity and σ_t > 0 for t ≥ 1: the probability-flow ODE in x̂0 exists (None), else why not."""
    if not process.identity:
        return (f"solves the probability-flow ODE of x_t = α_t x0 + σ_t ε and needs D = identity, not "
                f"{process.degradation.name!r} (the one step ddim and cold_naive apply to every process)")
    if not process.noisy:
        return "needs σ_t > 0 for every t >= 1"
    return None


def _half_log_snr(process, t):
    """λ_t = log(α_t/σ_t) (float32, from the float64 table; +inf at t = 0)."""
    return 0.5 * process.schedule.log_snr[jnp.asarray(t, jnp.int32)]


def _dpmpp_init(x_T):
    return jnp.zeros_like(x_T), jnp.zeros((x_T.shape[0],), jnp.float32)


@register_corrector("dpmpp_2m", applies=probability_flow, init_state=_dpmpp_init)
def dpmpp_2m(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None, state, predict=None):
    """One DPM-Solver++(2M) step; returns (x', (x̂0, h))."""
    del eps_hat, key, eta, aux, predict
    x0_prev, h_prev = state
    last = t_prev == 0
    h = jnp.where(last, 1.0, _half_log_snr(process, t_prev) - _half_log_snr(process, t))  # λ' = ∞ at t' = 0
    first = (h_prev <= 0) | ~jnp.isfinite(h_prev) | ~jnp.isfinite(h)
    h_prev_safe = jnp.where(first, 1.0, h_prev)
    c = jnp.where(first, 0.0, h / (2.0 * h_prev_safe))  # 1/(2r) = h/(2 h_prev)
    cast = lambda v: bcast(v, x_t).astype(x_t.dtype)  # noqa: E731
    d = (1.0 + cast(c)) * x0_hat - cast(c) * x0_prev
    ratio = process.std(t_prev) / process.std(t)
    x_prev = cast(ratio) * x_t + cast(-process.signal(t_prev) * jnp.expm1(-h)) * d
    return _finish(x_prev, x0_hat, t_prev), (x0_hat, h)


def _karras_step(process, x_t, x0_hat, t, t_prev):
    """(z, r, r', c', d, z') of the Euler step in the ODE's variables."""
    cast = lambda v: bcast(v, x_t).astype(x_t.dtype)  # noqa: E731
    a, s = process.schedule.ode_variables(t)
    a_p, s_p = process.schedule.ode_variables(t_prev)
    a, a_p, s, s_p = cast(a), cast(a_p), cast(s), cast(s_p)
    y = x_t / a
    d = (y - x0_hat) / s
    return y, s, s_p, a_p, d, y + (s_p - s) * d


@register_corrector("euler", applies=probability_flow)
def euler(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """x' = c' (z + (r' − r) d), d = (z − x̂0)/r, z = x/c."""
    del eps_hat, key, eta, aux
    _, _, _, a_p, _, y_p = _karras_step(process, x_t, x0_hat, t, t_prev)
    return _finish(a_p * y_p, x0_hat, t_prev)


@register_corrector("heun", applies=probability_flow, init_state=lambda x_T: (),
                    network_calls=lambda n: max(2 * int(n) - 1, 0))
def heun(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None, state, predict):
    """Euler to t', a second network call there, then z' = z_1 + φ (x̂0' − x̂0), φ = 1 − (1 − e^{−h})/h,
    h = ln(r/r') (module docstring); returns (x', ())."""
    del eps_hat, key, eta, aux
    _, s, s_p, a_p, _, y_1 = _karras_step(process, x_t, x0_hat, t, t_prev)
    x_1 = (a_p * y_1).astype(x_t.dtype)

    def second(_):
        x0_1, _ = predict(x_1, t_prev)
        h = jnp.log(s) - jnp.log(s_p)  # > 0: r decreases along the reverse steps
        phi = 1.0 + jnp.expm1(-h) / h  # 1 − (1 − e^{−h})/h: h/2 − h²/6 + … for small steps
        return (a_p * (y_1 + phi * (x0_1.astype(x_t.dtype) - x0_hat))).astype(x_t.dtype)

    # the last step (t' = 0) skips the second call: its result is x̂0 anyway
    x_prev = lax.cond(jnp.all(t_prev > 0), second, lambda _: x_1, None)
    return _finish(x_prev, x0_hat, t_prev), state


@register_corrector("heun_karras", applies=probability_flow, init_state=lambda x_T: (),
                    network_calls=lambda n: max(2 * int(n) - 1, 0))
def heun_karras(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None, state, predict):
    """Karras et al.'s Heun (Alg. 1): Euler to t', a second call there, z' = z + (r' − r)(d + d')/2; returns (x', ())."""
    del eps_hat, key, eta, aux
    y, s, s_p, a_p, d, y_1 = _karras_step(process, x_t, x0_hat, t, t_prev)
    x_1 = (a_p * y_1).astype(x_t.dtype)

    def second(_):
        x0_1, _ = predict(x_1, t_prev)
        d_1 = (y_1 - x0_1.astype(x_t.dtype)) / s_p
        return (a_p * (y + (s_p - s) * (0.5 * (d + d_1)))).astype(x_t.dtype)

    x_prev = lax.cond(jnp.all(t_prev > 0), second, lambda _: x_1, None)
    return _finish(x_prev, x0_hat, t_prev), state


def diagonal_flow(process):
    """D identity or DCT-diagonal and σ_t > 0 for t ≥ 1: the probability-flow ODE is diagonal in the process's
    basis, one ODE per coefficient (None), else why not."""
    if process.gaussian_posterior:
        return None
    if not process.noisy:
        return ("needs σ_t > 0 for every t >= 1 (it steps the probability-flow ODE in λ = log(a_t/σ_t); a noise-free "
                "process has none: use cold_improved)")
    return (f"steps the probability-flow ODE per coefficient of the DCT basis and needs D = identity or a DCT-diagonal "
            f"degradation, not {process.degradation.name!r} (ddim and cold_naive apply to every process)")


def _init_2m(x_T):
    return jnp.zeros_like(x_T), jnp.full((x_T.shape[0],), -1, jnp.int32)


@register_corrector("ddim_2m", applies=diagonal_flow, init_state=_init_2m)
def ddim_2m(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None, state, predict=None):
    """One DPM-Solver++(2M) step per coefficient of the process's basis, η > 0 its SDE form (module docstring);
    returns (x', (û0, t))."""
    del eps_hat, aux, predict
    u0_prev, t_last = state
    u_t = process.to_basis(x_t)
    u0 = process.to_basis(x0_hat)
    cast = lambda v: process.in_basis(v, u_t)  # noqa: E731  (B,) or (B, H, W, 1) → broadcast against u
    lam_t, lam_s = cast(process.half_log_snr(t)), cast(process.half_log_snr(t_prev))
    lam_l = cast(process.half_log_snr(jnp.maximum(t_last, 0)))
    last = bcast(t_prev == 0, u_t)
    have = bcast(t_last > 0, u_t)
    h = jnp.where(last, 1.0, lam_s - lam_t)  # λ' = ∞ at t' = 0 (that step returns x̂0)
    h = jnp.where(jnp.isnan(h), 0.0, h)  # a frequency gone at t and t' (d = 0 at both): it does not move
    h_prev = jnp.where(have, lam_t - lam_l, 0.0)
    first = ~have | ~(h_prev > 0) | ~jnp.isfinite(h_prev) | ~jnp.isfinite(h)
    c = jnp.where(first, 0.0, h / (2.0 * jnp.where(first, 1.0, h_prev)))  # 1/(2r), r = h_prev/h
    d = (1.0 + c) * u0 - c * u0_prev
    a_s = cast(process.signal_scale(t_prev))
    ratio = cast(process.std(t_prev) / process.std(t))
    # η: ρ = √(1 − η² var/σ'²) (0 where η² var ≥ σ'², as ddim clamps); η = 0 gives log ρ = 0 exactly
    eta2_var = jnp.square(jnp.asarray(eta, jnp.float32)) * cast(process.posterior_variance(t, t_prev))
    sig2_s = cast(jnp.square(process.std(t_prev)))
    frac = jnp.where(sig2_s > 0, eta2_var / jnp.where(sig2_s > 0, sig2_s, 1.0), 0.0)
    log_rho = 0.5 * jnp.log1p(-jnp.minimum(frac, 1.0))
    coef0 = jnp.where(a_s > 0, -a_s * jnp.expm1(log_rho - h), 0.0)  # a'(1 − ρ e^{−h})
    u_s = jnp.exp(log_rho) * ratio * u_t + coef0 * d
    if not eta_is_zero(eta):  # a traced η forms the noise term always (exactly 0 where η = 0)
        u_s = u_s + jnp.sqrt(eta2_var) * process.to_basis(_noise(key, x0_hat))
    return _finish(process.from_basis(u_s), x0_hat, t_prev), (u0, t)
