"""Batched L-BFGS: N independent minimisations advanced in lock-step, ONE loss+gradient evaluation each.

Every field n has its own iterate x_n, curvature pairs (s, y), inverse-Hessian scale γ_n, search
direction d_n and trial step t_n; only the evaluation of ℓ and ∇ℓ is batched. One iteration:

    x̃_n = x_n + t_n d_n ;  evaluate ℓ_n(x̃_n), ∇ℓ_n(x̃_n)            (one batched call for all n)
    accept where the Armijo condition  ℓ_n(x̃_n) ≤ ℓ_n(x_n) + c₁ t_n ∇ℓ_nᵀ d_n  holds (and all is finite):
        store (s, y) = (x̃_n − x_n, ∇ℓ_n(x̃_n) − ∇ℓ_n(x_n)) if sᵀy > 10⁻¹⁰ ‖s‖‖y‖ (else an empty pair),
        γ_n = sᵀy / yᵀy,  d_n = −H_n ∇ℓ_n (two-loop recursion over the last ``memory`` pairs), t_n = 1;
    reject otherwise: t_n ← the minimiser of the quadratic through ℓ_n(x_n), its slope and ℓ_n(x̃_n),
        clipped to [0.1 t_n, 0.5 t_n] (0.1 t_n if ℓ̃ is not finite).

So the cost per iteration is fixed (no per-field while-loop, no extra evaluations): rejected trials
simply spend an iteration of that field, which in practice is rare once γ is learnt (t = 1 is
accepted). The memory is a ring buffer whose slot advances every iteration for all rows at once
(rows that store nothing write an empty pair, ρ = 0), so a row's memory is "its curvature pairs of
the last ``memory`` iterations": still independent of the other rows, and the buffers are updated
in place by one dynamic slice instead of per-row scatters. A field whose trial step has shrunk
below ``min_step`` with a non-empty memory restarts
from the scaled gradient (memory cleared). The very first direction is −γ₀∇ℓ with γ₀ chosen so the
first step changes the pixels by ``initial_step`` × their standard deviation (RMS; a constant
start uses its RMS value instead).

Shapes: x (N, D) flattened fields; ``value_and_grad`` maps (N, D) → ((N,), (N, D)) and must not
couple the rows (row n of the gradient depends on row n of x only).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["LBFGSState", "lbfgs_init", "lbfgs_step", "two_loop_direction"]


class LBFGSState(NamedTuple):
    x: jax.Array          # (N, D) accepted iterates
    value: jax.Array      # (N,) ℓ(x)
    grad: jax.Array       # (N, D) ∇ℓ(x)
    s: jax.Array          # (N, m, D) steps of the stored pairs (ring buffer)
    y: jax.Array          # (N, m, D) gradient changes of the stored pairs
    rho: jax.Array        # (N, m) 1/(sᵀy); 0 marks an empty slot
    head: jax.Array       # () int32 slot the next pair goes to (shared: advances every iteration)
    gamma: jax.Array      # (N,) initial inverse-Hessian scale
    direction: jax.Array  # (N, D) current search direction d
    slope: jax.Array      # (N,) ∇ℓ(x)ᵀ d (< 0)
    step: jax.Array       # (N,) trial step t
    accepted: jax.Array   # (N,) int32 accepted steps so far
    evaluations: jax.Array  # () int32 iterations (batched evaluations) so far


def _dot(a, b):
    return jnp.sum(a * b, axis=-1)


def two_loop_direction(g, s, y, rho, head, gamma, precondition: Callable | None = None):
    """d = −H g for every row: the L-BFGS two-loop recursion, newest pair first, vectorised over N.

    g (N, D); s, y (N, m, D); rho (N, m) (0 for empty slots: they are no-ops); head () int; gamma (N,).
    The initial inverse Hessian is H₀ = γ M with M = ``precondition`` (a fixed symmetric positive
    definite map (N, D) → (N, D); identity when None).
    """
    m = rho.shape[1]
    order = (head - 1 - jnp.arange(m)) % m                               # newest → oldest

    def backward(q, k):
        a = rho[:, k] * _dot(s[:, k], q)
        return q - a[:, None] * y[:, k], a

    q, alphas = jax.lax.scan(backward, g, order)
    r = gamma[:, None] * (q if precondition is None else precondition(q))

    def forward(r, ka):
        k, a = ka
        b = rho[:, k] * _dot(y[:, k], r)
        return r + (a - b)[:, None] * s[:, k], None

    r, _ = jax.lax.scan(forward, r, (order[::-1], alphas[::-1]))
    return -r


def _apply(precondition, v):
    return v if precondition is None else precondition(v)


def lbfgs_init(value_and_grad: Callable, x0, memory: int, initial_step: float = 0.1,
               precondition: Callable | None = None) -> LBFGSState:
    """Evaluate ℓ, ∇ℓ at x0 (N, D) and set up empty memories and the first (scaled gradient) step."""
    x0 = jnp.asarray(x0, jnp.float32)
    n, d = x0.shape
    value, grad = value_and_grad(x0)
    spread = jnp.std(x0, axis=-1)
    rms = jnp.sqrt(jnp.mean(x0 * x0, axis=-1))
    # the pixels' spread sets the size of the first step; a constant start (whose float32 std is
    # round-off, not 0) falls back to its RMS value, a zero start to 1
    size = jnp.where(spread > 1e-5 * rms, spread, jnp.where(rms > 0, rms, 1.0))
    mg = _apply(precondition, grad)
    gnorm = jnp.sqrt(jnp.mean(mg * mg, axis=-1))
    gamma = initial_step * size / jnp.where(gnorm > 0, gnorm, 1.0)
    direction = -gamma[:, None] * mg
    return LBFGSState(x0, value, grad, jnp.zeros((n, memory, d), jnp.float32), jnp.zeros((n, memory, d), jnp.float32),
                      jnp.zeros((n, memory), jnp.float32), jnp.zeros((), jnp.int32), gamma, direction,
                      _dot(grad, direction), jnp.ones((n,), jnp.float32), jnp.zeros((n,), jnp.int32),
                      jnp.zeros((), jnp.int32))


def lbfgs_step(value_and_grad: Callable, st: LBFGSState, *, armijo: float = 1e-4, min_step: float = 1e-3,
               precondition: Callable | None = None) -> LBFGSState:
    """One iteration for every row: one batched evaluation, per-row accept/backtrack (module doc).

    ``precondition``: the fixed SPD map M of H₀ = γM (see :func:`two_loop_direction`); pass the same
    one to :func:`lbfgs_init`."""
    m = st.rho.shape[1]
    t = st.step
    xt = st.x + t[:, None] * st.direction
    ft, gt = value_and_grad(xt)
    finite = jnp.isfinite(ft) & jnp.all(jnp.isfinite(gt), axis=-1)
    ok = finite & (ft <= st.value + armijo * t * st.slope)

    # curvature pair of the accepted step (the actual step x̃ − x, not t·d, so sᵀy is consistent)
    sv, yv = xt - st.x, jnp.where(finite[:, None], gt - st.grad, 0.0)
    sy, ss, yy = _dot(sv, yv), _dot(sv, sv), _dot(yv, yv)
    store = ok & (sy > 1e-10 * jnp.sqrt(ss * yy)) & (yy > 0)
    ymy = yy if precondition is None else _dot(yv, precondition(yv))   # γ = sᵀy / yᵀMy
    store = store & (ymy > 0)
    h = st.head
    s_buf = st.s.at[:, h].set(jnp.where(store[:, None], sv, 0.0))
    y_buf = st.y.at[:, h].set(jnp.where(store[:, None], yv, 0.0))
    rho = st.rho.at[:, h].set(jnp.where(store, 1.0 / jnp.where(store, sy, 1.0), 0.0))
    head = (h + 1) % m
    gamma = jnp.where(store, sy / jnp.where(store, ymy, 1.0), st.gamma)

    x = jnp.where(ok[:, None], xt, st.x)
    value = jnp.where(ok, ft, st.value)
    grad = jnp.where(ok[:, None], gt, st.grad)

    # rejected: backtrack by quadratic interpolation of ℓ(x + τd) on [0, t], safeguarded
    curv = ft - st.value - st.slope * t
    t_quad = -st.slope * t * t / (2.0 * jnp.where(curv > 0, curv, 1.0))
    t_back = jnp.where(finite & (curv > 0), jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)
    has_memory = jnp.any(rho > 0, axis=-1)
    restart = ~ok & (t_back < min_step) & has_memory
    rho = jnp.where(restart[:, None], 0.0, rho)

    renew = ok | restart
    d_new = two_loop_direction(grad, s_buf, y_buf, rho, head, gamma, precondition)
    slope_new = _dot(grad, d_new)
    # a non-descent direction (only from round-off in a stored pair) falls back to the scaled gradient
    bad = renew & ~(slope_new < 0)
    rho = jnp.where(bad[:, None], 0.0, rho)
    d_new = jnp.where(bad[:, None], -gamma[:, None] * _apply(precondition, grad), d_new)
    direction = jnp.where(renew[:, None], d_new, st.direction)
    slope = jnp.where(renew, _dot(grad, d_new), st.slope)
    step = jnp.where(renew, 1.0, t_back)
    return LBFGSState(x, value, grad, s_buf, y_buf, rho, head, gamma, direction, slope, step,
                      st.accepted + ok.astype(jnp.int32), st.evaluations + 1)
