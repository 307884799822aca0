"""Forced 2D turbulence: Kolmogorov flow in vorticity form, spun up and sampled (docs/simulations.md).

Equation on [0, 2π)², periodic, arrays indexed ``[y, x]``:

    ∂ω/∂t + u·∇ω = ν ∇²ω − α ω + f,    f = −k_f γ cos(k_f x),    ∇²ψ = ω,  u = (−∂_y ψ, ∂_x ψ),

i.e. the velocity forcing ``F = (0, −γ sin(k_f x))`` (Kolmogorov forcing at k_f = 4 by default),
linear drag α = 0.1, 2/3 dealiasing. Time stepping is exponax's ``KolmogorovFlowVorticity``
(ETDRK2, pseudo-spectral); many independent runs are advanced together (``vmap``) inside one jitted
``lax.scan``.

Energy and enstrophy per unit area, with Ê the budget terms:

    E = ½⟨|u|²⟩,   Z = ½⟨ω²⟩,   ε_in = ⟨F·u⟩ = −⟨ψ f⟩,   dE/dt = ε_in − 2νZ − 2αE,

so at statistical steady state ``⟨ε_in⟩ = 2ν⟨Z⟩ + 2α⟨E⟩`` (the budget checked by the tests).

Sampling (:func:`prepare_turbulence` then :func:`sample_turbulence`):

1. a pilot ensemble starts from random band-limited vorticity; the spin-up is *detected* on the
   ensemble-mean energy and enstrophy series with the MSER rule (White 1997: truncate the transient
   at the point that minimises the standard error of the mean of what remains), running longer
   until the truncation point lies in the first half of the series;
2. the pilot then measures the decorrelation time: the first lag at which the correlation of the
   vorticity fluctuation ω − Ω(x) (Ω the mean forced profile) drops below ``decorrelation_threshold``;
3. production runs spin up for the measured time, then save one snapshot per snapshot interval
   = max(decorrelation time, 2 τ_int(E), 2 τ_int(Z)) (τ_int of the energy and enstrophy series by
   the Γ-method), each shifted by a random periodic translation.

Default viscosity by grid size: ``ν = 5·10⁻³ (64/N)²`` (≈ 1.25·10⁻³ at N = 128) keeps the
enstrophy-dissipation scale resolved, ``k_max η_ω ≳ 1`` with ``η_ω = (ν³/β)^{1/6}``, β the enstrophy
dissipation rate, k_max the dealiasing cutoff; the pilot measures ``k_max η_ω`` and records it.
Default time step ``dt = 0.64/N`` up to 64² and ``0.32/N`` above (measured Courant numbers 0.46 at
64², 0.26 at 128²: 0.64/N blew up at 128²); every run
checks the measured Courant number and raises :class:`phigen.errors.DivergenceError` above 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import errors as E
from .._validation import check_int_at_least, check_positive

__all__ = [
    "KolmogorovFlow",
    "kolmogorov_flow",
    "default_viscosity",
    "FlowObservables",
    "flow_observables",
    "random_vorticity",
    "taylor_green_vorticity",
    "simulate",
    "velocity_from_vorticity",
    "mser_truncation",
    "vorticity_correlation",
    "TurbulenceSamplerConfig",
    "TurbulencePlan",
    "prepare_turbulence",
    "sample_turbulence",
    "run_groups",
]

TWO_PI = 2.0 * math.pi
MIN_SIZE, MAX_SIZE = 16, 2048


def default_viscosity(size: int) -> float:
    """``ν(N) = 5·10⁻³ (64/N)²``: the enstrophy-dissipation scale stays resolved at any N."""
    return 5e-3 * (64.0 / int(size)) ** 2


def _default_dt(size: int) -> float:
    # 0.64/N (Courant ≈ 0.45 measured) is stable up to 64² but blew up within 10 time units at 128²
    # (both at ν = 1.25·10⁻³ and 6·10⁻⁴); half of it (Courant ≈ 0.26) is stable there
    size = int(size)
    return 0.64 / size if size <= 64 else 0.32 / size


@dataclass(frozen=True)
class KolmogorovFlow:
    """Physical and numerical parameters of the forced flow (use :func:`kolmogorov_flow` for defaults)."""

    size: int
    viscosity: float
    dt: float
    drag: float = 0.1
    forcing_wavenumber: int = 4
    forcing_amplitude: float = 1.0
    dealiasing: float = 2.0 / 3.0
    order: int = 2

    def __post_init__(self):
        size = self.size
        if int(size) != size or size % 2 or not (MIN_SIZE <= size <= MAX_SIZE):
            raise E.ParameterError(f"turbulence size must be an even integer in [{MIN_SIZE}, {MAX_SIZE}]; got {size!r}")
        object.__setattr__(self, "size", int(size))
        check_positive(self.viscosity, "viscosity")
        check_positive(self.dt, "dt")
        check_positive(self.drag, "drag", strict=False)
        check_positive(self.forcing_amplitude, "forcing_amplitude", strict=False)
        kf = check_int_at_least(self.forcing_wavenumber, "forcing_wavenumber", 1)
        object.__setattr__(self, "forcing_wavenumber", kf)
        if not (0.0 < self.dealiasing <= 1.0):
            raise E.ParameterError(f"dealiasing must be in (0, 1]; got {self.dealiasing!r}")
        if kf >= self.k_max:
            raise E.ParameterError(f"forcing_wavenumber {kf} is not resolved on a {size}² grid "
                                   f"(dealiasing cutoff k_max = {self.k_max:.1f})")
        if self.order not in (1, 2, 3, 4):
            raise E.ParameterError(f"order must be 1..4; got {self.order!r}")
        for name in ("viscosity", "dt", "drag", "forcing_amplitude", "dealiasing"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def k_max(self) -> float:
        """Largest wavenumber kept by the dealiasing mask (exponax: ``fraction·(N/2) − 1``)."""
        return self.dealiasing * (self.size // 2) - 1.0


def kolmogorov_flow(size: int, *, viscosity: float | None = None, dt: float | None = None, drag: float = 0.1,
                    forcing_wavenumber: int = 4, forcing_amplitude: float = 1.0, **kw) -> KolmogorovFlow:
    """:class:`KolmogorovFlow` with the grid-dependent defaults ``ν = default_viscosity(N)``, ``dt = 0.64/N``
    (``0.32/N`` above 64²)."""
    if int(size) != size or size % 2 or not (MIN_SIZE <= size <= MAX_SIZE):
        raise E.ParameterError(f"turbulence size must be an even integer in [{MIN_SIZE}, {MAX_SIZE}]; got {size!r}")
    return KolmogorovFlow(int(size), default_viscosity(size) if viscosity is None else viscosity,
                          _default_dt(size) if dt is None else dt, drag, forcing_wavenumber, forcing_amplitude, **kw)


# ---- spectral helpers (rfft layout: (..., N, N//2 + 1), axis -2 = y, axis -1 = x) -------------
@lru_cache(maxsize=16)
def _grid(size: int):
    ky = np.fft.fftfreq(size, 1.0 / size)[:, None]
    kx = np.fft.rfftfreq(size, 1.0 / size)[None, :]
    k2 = ky**2 + kx**2
    inv_k2 = np.where(k2 == 0, 0.0, 1.0 / np.where(k2 == 0, 1.0, k2))
    # each rfft coefficient stands for itself and its conjugate, except the kx = 0 and Nyquist columns
    weight = np.full(k2.shape, 2.0)
    weight[:, 0] = 1.0
    if size % 2 == 0:
        weight[:, -1] = 1.0
    # numpy (not jnp): cached constants must not be created inside a trace
    return tuple(a.astype(np.float32) for a in (ky, kx, k2, inv_k2, weight))


def _forcing(flow: KolmogorovFlow) -> jax.Array:
    """Vorticity forcing f(y, x) = −k_f γ cos(k_f x) on the grid, (N, N)."""
    x = TWO_PI * np.arange(flow.size) / flow.size
    row = -flow.forcing_wavenumber * flow.forcing_amplitude * np.cos(flow.forcing_wavenumber * x)
    return np.broadcast_to(row[None, :], (flow.size, flow.size)).astype(np.float32)


class FlowObservables(NamedTuple):
    """Per-run scalars, each ``(B,)`` (or ``(T, B)`` from :func:`simulate`): energy E, enstrophy Z,
    palinstrophy P = ½⟨|∇ω|²⟩, injection ε_in, and the Courant number max|u|·dt/dx."""

    energy: jax.Array
    enstrophy: jax.Array
    palinstrophy: jax.Array
    injection: jax.Array
    courant: jax.Array


def _observables(w_hat, f_hat, size: int, dt: float) -> FlowObservables:
    ky, kx, k2, inv_k2, weight = _grid(size)
    n4 = float(size) ** 4
    p = weight * (w_hat.real**2 + w_hat.imag**2) / n4      # Parseval: ⟨ω²⟩ = Σ_w |ω̂|²/N⁴
    energy = 0.5 * jnp.sum(p * inv_k2, axis=(-2, -1))
    enstrophy = 0.5 * jnp.sum(p, axis=(-2, -1))
    palinstrophy = 0.5 * jnp.sum(p * k2, axis=(-2, -1))
    psi_hat = -w_hat * inv_k2
    injection = -jnp.sum(weight * (psi_hat * jnp.conj(f_hat)).real, axis=(-2, -1)) / n4
    ux = jnp.fft.irfft2(-1j * ky * psi_hat, s=(size, size))
    uy = jnp.fft.irfft2(1j * kx * psi_hat, s=(size, size))
    umax = jnp.sqrt(jnp.max(ux**2 + uy**2, axis=(-2, -1)))
    return FlowObservables(energy, enstrophy, palinstrophy, injection, umax * dt * size / TWO_PI)


def flow_observables(vorticity, flow: KolmogorovFlow) -> FlowObservables:
    """Energy, enstrophy, palinstrophy, injection ⟨F·u⟩ and Courant number of vorticity fields
    ``(B, N, N)`` (unshifted: the injection depends on the phase of the forcing)."""
    w = jnp.asarray(vorticity, jnp.float32)
    if w.ndim == 2:
        w = w[None]
    if w.shape[-2:] != (flow.size, flow.size):
        raise E.InputError(f"vorticity must be (B, {flow.size}, {flow.size}); got {tuple(w.shape)}")
    return _observables(jnp.fft.rfft2(w), jnp.fft.rfft2(_forcing(flow)), flow.size, flow.dt)


def velocity_from_vorticity(vorticity):
    """Velocity ``(B, 2, N, N)`` = (u_x, u_y) of periodic vorticity ``(B, N, N)`` on [0, 2π)²:
    ψ = ∇⁻²ω, u_x = −∂_y ψ, u_y = ∂_x ψ (so that ∂_x u_y − ∂_y u_x = ω − mean(ω))."""
    w = jnp.asarray(vorticity, jnp.float32)
    size = w.shape[-1]
    if w.ndim != 3 or w.shape[-2] != size:
        raise E.InputError(f"vorticity must be (B, N, N); got {tuple(w.shape)}")
    ky, kx, _, inv_k2, _ = _grid(size)
    psi_hat = -jnp.fft.rfft2(w) * inv_k2
    ux = jnp.fft.irfft2(-1j * ky * psi_hat, s=(size, size))
    uy = jnp.fft.irfft2(1j * kx * psi_hat, s=(size, size))
    return jnp.stack([ux, uy], axis=1)


def random_vorticity(key, n: int, size: int, *, k_max: float = 8.0, rms: float = 1.0) -> jax.Array:
    """``n`` random initial vorticity fields ``(n, N, N)``: white noise band-limited to
    ``1 ≤ |k| ≤ k_max``, zero mean, normalised to the given rms per field."""
    n = check_int_at_least(n, "n", 1)
    ky, kx, k2, _, _ = _grid(int(size))
    noise = jnp.fft.rfft2(jax.random.normal(key, (n, size, size), jnp.float32))
    band = (k2 >= 1.0) & (k2 <= k_max**2)
    w = jnp.fft.irfft2(jnp.where(band, noise, 0.0), s=(size, size))
    return rms * w / jnp.sqrt(jnp.mean(w**2, axis=(-2, -1), keepdims=True))


def taylor_green_vorticity(size: int, k: int = 1, amplitude: float = 1.0) -> jax.Array:
    """Taylor–Green vortex ω = 2kA cos(kx) cos(ky) ``(N, N)``: an exact steady solution of the
    Euler equations, so the Navier–Stokes flow decays as ω(t) = ω(0) exp(−(2νk² + α)t)."""
    x = TWO_PI * np.arange(size) / size
    w = 2.0 * k * amplitude * np.cos(k * x)[None, :] * np.cos(k * x)[:, None]
    return jnp.asarray(w, jnp.float32)


@lru_cache(maxsize=16)
def _compiled(flow: KolmogorovFlow):
    """Jitted batched advance for one flow: ``advance(w_hat, n_records, steps_per_record)``."""
    import exponax

    stepper = exponax.stepper.KolmogorovFlowVorticity(
        2, TWO_PI, flow.size, flow.dt, diffusivity=flow.viscosity, drag=-flow.drag,
        injection_mode=flow.forcing_wavenumber, injection_scale=flow.forcing_amplitude,
        order=flow.order, dealiasing_fraction=flow.dealiasing)
    f_hat = jnp.fft.rfft2(_forcing(flow))
    step = jax.vmap(lambda w: stepper.step_fourier(w[None])[0])

    def advance(w_hat, n_records: int, steps_per_record: int):
        def record(w, _):
            w = jax.lax.fori_loop(0, steps_per_record, lambda i, v: step(v), w)
            return w, _observables(w, f_hat, flow.size, flow.dt)

        return jax.lax.scan(record, w_hat, None, length=n_records)

    def snapshots(w_hat, n_snapshots: int, n_records: int, steps_per_record: int):
        def block(w, _):
            w, obs = advance(w, n_records, steps_per_record)
            return w, (jnp.fft.irfft2(w, s=(flow.size, flow.size)), obs)

        w, (snaps, obs) = jax.lax.scan(block, w_hat, None, length=n_snapshots)
        # observables (n_snapshots, n_records, B) -> one time series (T, B)
        return w, snaps, jax.tree_util.tree_map(lambda a: a.reshape(-1, a.shape[-1]), obs)

    return (jax.jit(advance, static_argnums=(1, 2)), jax.jit(snapshots, static_argnums=(1, 2, 3)))


def simulate(vorticity, flow: KolmogorovFlow, *, n_records: int, steps_per_record: int = 1):
    """Advance vorticity fields ``(B, N, N)`` by ``n_records · steps_per_record`` steps of ``flow.dt``.

    Returns ``(final vorticity (B, N, N), FlowObservables with (n_records, B) arrays)``, the
    observables taken after every ``steps_per_record`` steps. All runs advance in one jitted scan.
    """
    w = jnp.asarray(vorticity, jnp.float32)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[-2:] != (flow.size, flow.size):
        raise E.InputError(f"vorticity must be (B, {flow.size}, {flow.size}); got {tuple(w.shape)}")
    n_records = check_int_at_least(n_records, "n_records", 1)
    steps_per_record = check_int_at_least(steps_per_record, "steps_per_record", 1)
    advance, _ = _compiled(flow)
    w_hat, obs = advance(jnp.fft.rfft2(w), n_records, steps_per_record)
    return jnp.fft.irfft2(w_hat, s=(flow.size, flow.size)), obs


def _check_run(obs: FlowObservables, what: str) -> None:
    e = np.asarray(obs.energy)
    c = np.asarray(obs.courant)
    if not np.all(np.isfinite(e)) or not np.all(np.isfinite(c)):
        raise E.DivergenceError(f"{what}: the flow blew up (NaN/inf); use a smaller dt or a larger viscosity")
    if c.max() > 1.0:
        raise E.DivergenceError(f"{what}: Courant number reached {c.max():.2f} > 1; pass a smaller dt")


# ---- spin-up and decorrelation measurements ----------------------------------------------------
def mser_truncation(series, *, batch: int = 5) -> int:
    """MSER-``batch`` truncation point of a series ``(T,)`` (White 1997): the index d (a multiple
    of ``batch``, searched over the first half) minimising ``Σ_{i≥d}(x_i − x̄_d)² / (n − d)²`` on
    batch means. Returns d in samples, or −1 when the minimum sits at the end of the searched range
    (the transient may not be over)."""
    x = np.asarray(series, dtype=np.float64).ravel()
    nb = x.size // batch
    if nb < 4:
        raise E.InputError(f"MSER needs at least {4 * batch} samples; got {x.size}")
    b = x[: nb * batch].reshape(nb, batch).mean(axis=1)
    half = nb // 2
    stats = np.array([np.var(b[d:]) / (nb - d) for d in range(half + 1)])
    d = int(np.argmin(stats))
    return -1 if d >= half else d * batch


def vorticity_correlation(snapshots, max_lag: int) -> np.ndarray:
    """Correlation ``C(τ) = ⟨ω'(t)ω'(t+τ)⟩ / ⟨ω'²⟩`` of time series of fields ``(T, B, N, N)``
    for τ = 0..max_lag (in snapshot steps), with ω' = ω − Ω the deviation from the mean profile Ω(x)
    (averaged over time, runs and y: the forcing makes the mean flow depend on x only)."""
    w = np.asarray(snapshots, dtype=np.float64)
    if w.ndim != 4:
        raise E.InputError(f"snapshots must be (T, B, N, N); got {w.shape}")
    max_lag = min(int(max_lag), w.shape[0] - 1)
    w = w - w.mean(axis=(0, 1, 2), keepdims=True)
    var = np.mean(w * w)
    return np.array([np.mean(w[: w.shape[0] - t] * w[t:]) / var for t in range(max_lag + 1)])


@dataclass(frozen=True)
class TurbulenceSamplerConfig:
    """How snapshots are drawn: pilot size, spin-up detection, decorrelation measurement, output."""

    snapshots_per_run: int = 8
    pilot_runs: int = 8
    record_interval: float = 0.1          # time between recorded E, Z, ε values
    spin_up_chunk: float = 20.0           # pilot runs this long between MSER tests
    max_spin_up: float = 400.0
    spin_up_safety: float = 1.5           # production spin-up = safety × detected truncation time
    probe_time: float = 40.0              # pilot time used to measure the decorrelation
    probe_interval: float = 0.5
    decorrelation_threshold: float = 0.1
    init_rms: float = 1.0
    velocity: bool = False                # also output (u_x, u_y) as channels
    shift: bool = True                    # random periodic translation of each snapshot

    def __post_init__(self):
        check_int_at_least(self.snapshots_per_run, "snapshots_per_run", 1)
        check_int_at_least(self.pilot_runs, "pilot_runs", 2)
        for name in ("record_interval", "spin_up_chunk", "max_spin_up", "probe_time", "probe_interval", "init_rms"):
            check_positive(getattr(self, name), name)
        if not self.spin_up_safety >= 1.0:
            raise E.ParameterError(f"spin_up_safety must be >= 1; got {self.spin_up_safety!r}")
        if not (0.0 < self.decorrelation_threshold < 1.0):
            raise E.ParameterError(f"decorrelation_threshold must be in (0, 1); got {self.decorrelation_threshold!r}")
        if self.probe_time < 4 * self.probe_interval:
            raise E.ParameterError("probe_time must cover at least 4 probe intervals")


class TurbulencePlan(NamedTuple):
    """The measured sampling plan (from the pilot) shared by every production batch."""

    flow: KolmogorovFlow
    config: TurbulenceSamplerConfig
    steps_per_record: int
    spin_up_records: int          # production spin-up length, in records
    records_per_snapshot: int     # snapshot interval, in records
    measured: dict                # spin-up time, decorrelation time, k_max·η_ω, ... (JSON-able)

    @property
    def spin_up_time(self) -> float:
        return self.spin_up_records * self.steps_per_record * self.flow.dt

    @property
    def snapshot_interval(self) -> float:
        return self.records_per_snapshot * self.steps_per_record * self.flow.dt


def _trim_to_grid(w, size: int, target: int = 64):
    """Fourier-truncate fields (..., N, N) to target² (keeps the large, slowest scales: a
    conservative and cheap input for the correlation time at big N)."""
    if size <= target:
        return w
    w_hat = np.fft.fft2(w)
    h = target // 2
    idx = np.r_[0:h, size - h:size]
    return np.real(np.fft.ifft2(w_hat[..., idx, :][..., :, idx])) * (target / size) ** 2


def prepare_turbulence(key, flow: KolmogorovFlow, config: TurbulenceSamplerConfig = TurbulenceSamplerConfig()
                       ) -> TurbulencePlan:
    """Run the pilot ensemble: detect the spin-up (MSER on ensemble-mean E and Z), then measure the
    decorrelation time of the vorticity fluctuation. Deterministic in ``key``."""
    spr = max(1, round(config.record_interval / flow.dt))
    dt_rec = spr * flow.dt
    advance, snapshots = _compiled(flow)
    w = random_vorticity(key, config.pilot_runs, flow.size, rms=config.init_rms)
    w_hat = jnp.fft.rfft2(w)
    chunk = max(20, round(config.spin_up_chunk / dt_rec))
    energy, enstrophy = [], []
    truncation = -1
    while truncation < 0:
        if len(energy) * dt_rec >= config.max_spin_up:
            raise E.DivergenceError(f"turbulence: no statistically steady state detected within "
                                    f"t = {config.max_spin_up} (MSER truncation stays in the second half)")
        w_hat, obs = advance(w_hat, chunk, spr)
        _check_run(obs, "turbulence pilot")
        energy.extend(np.asarray(obs.energy).mean(axis=1))
        enstrophy.extend(np.asarray(obs.enstrophy).mean(axis=1))
        d_e, d_z = mser_truncation(energy), mser_truncation(enstrophy)
        truncation = -1 if min(d_e, d_z) < 0 else max(d_e, d_z)
    spin_up_records = max(1, math.ceil(config.spin_up_safety * truncation))
    steady = slice(truncation, None)

    # decorrelation: correlation of the vorticity fluctuation over the probe window
    rps_probe = max(1, round(config.probe_interval / dt_rec))
    n_probe = max(4, round(config.probe_time / (rps_probe * dt_rec)))
    w_hat, snaps, obs = snapshots(w_hat, n_probe, rps_probe, spr)
    _check_run(obs, "turbulence pilot")
    snaps = _trim_to_grid(np.asarray(snaps), flow.size)
    corr = vorticity_correlation(snaps, n_probe // 2)
    below = np.flatnonzero(corr < config.decorrelation_threshold)
    if below.size == 0:
        raise E.DivergenceError(
            f"turbulence: vorticity correlation stays above {config.decorrelation_threshold} over "
            f"{n_probe // 2 * rps_probe * dt_rec:.1f} time units (laminar flow?); increase probe_time or Re")
    lag = int(below[0])
    decorrelation_time = lag * rps_probe * dt_rec

    from ..samplers.diagnostics import integrated_autocorrelation_time

    e_series = np.asarray(obs.energy).T  # (B, T) from the probe window
    z_series = np.asarray(obs.enstrophy).T
    tau_e = integrated_autocorrelation_time(e_series).tau * dt_rec
    tau_z = integrated_autocorrelation_time(z_series).tau * dt_rec
    # the large-scale energy can stay correlated longer than the pointwise vorticity: the snapshot
    # interval is the longer of the field decorrelation time and 2·τ_int of E and Z
    interval = max(decorrelation_time, 2.0 * tau_e, 2.0 * tau_z)
    records_per_snapshot = max(1, math.ceil(interval / dt_rec - 1e-9))
    palin = float(np.mean(np.asarray(obs.palinstrophy)))
    enst = float(np.mean(np.asarray(obs.enstrophy)))
    beta = 2.0 * flow.viscosity * palin + 2.0 * flow.drag * enst  # enstrophy dissipation rate
    eta_w = (flow.viscosity**3 / beta) ** (1.0 / 6.0)
    measured = {
        "spin_up_time": spin_up_records * dt_rec,
        "spin_up_detected_time": truncation * dt_rec,
        "pilot_time": len(energy) * dt_rec,
        "decorrelation_time": decorrelation_time,
        "decorrelation_threshold": config.decorrelation_threshold,
        "correlation_at_interval": float(corr[lag]),
        "tau_int_energy": float(tau_e),
        "tau_int_enstrophy": float(tau_z),
        "kmax_eta": float(flow.k_max * eta_w),
        "pilot_energy": float(np.mean(energy[steady])),
        "pilot_enstrophy": float(np.mean(enstrophy[steady])),
        "pilot_max_courant": float(np.max(np.asarray(obs.courant))),
    }
    return TurbulencePlan(flow, config, spr, spin_up_records, records_per_snapshot, measured)


_TAG_INIT, _TAG_SHIFT = 0, 1


def sample_turbulence(key, plan: TurbulencePlan, n_runs: int):
    """Production: ``n_runs`` independent runs from fresh random vorticity, spun up for the plan's
    measured time, then ``snapshots_per_run`` snapshots one snapshot interval apart, each randomly
    shifted (periodic). Deterministic in ``key``.

    Returns ``(fields, observables)``: fields ``(n_runs·S, N, N)`` (vorticity) or ``(n_runs·S, 3, N, N)``
    (vorticity, u_x, u_y) with ``velocity=True``, ordered run-major (the S snapshots of run 0 first);
    observables is a :class:`FlowObservables` of ``(T, n_runs)`` series over the snapshot phase (for
    the energy budget).
    """
    n_runs = check_int_at_least(n_runs, "n_runs", 1)
    flow, cfg = plan.flow, plan.config
    advance, snapshots = _compiled(flow)
    w = random_vorticity(jax.random.fold_in(key, _TAG_INIT), n_runs, flow.size, rms=cfg.init_rms)
    w_hat, obs0 = advance(jnp.fft.rfft2(w), plan.spin_up_records, plan.steps_per_record)
    _check_run(obs0, "turbulence spin-up")
    _, snaps, obs = snapshots(w_hat, cfg.snapshots_per_run, plan.records_per_snapshot, plan.steps_per_record)
    _check_run(obs, "turbulence run")
    snaps = jnp.swapaxes(snaps, 0, 1).reshape(-1, flow.size, flow.size)  # run-major
    if cfg.shift:
        shifts = jax.random.randint(jax.random.fold_in(key, _TAG_SHIFT), (snaps.shape[0], 2), 0, flow.size)
        snaps = jax.vmap(lambda f, s: jnp.roll(f, (s[0], s[1]), axis=(0, 1)))(snaps, shifts)
    if cfg.velocity:
        snaps = jnp.concatenate([snaps[:, None], velocity_from_vorticity(snaps)], axis=1)
    return np.asarray(snaps), obs


def budget(observables: FlowObservables, flow: KolmogorovFlow) -> dict:
    """Time- and run-averaged energy budget: ``⟨ε_in⟩``, ``2ν⟨Z⟩``, ``2α⟨E⟩`` and the relative
    residual ``(⟨ε_in⟩ − 2ν⟨Z⟩ − 2α⟨E⟩) / ⟨ε_in⟩``."""
    return _budget_terms(float(np.mean(np.asarray(observables.injection))),
                         float(np.mean(np.asarray(observables.enstrophy))),
                         float(np.mean(np.asarray(observables.energy))), flow.viscosity, flow.drag)


def _budget_terms(inj: float, enstrophy: float, energy: float, viscosity: float, drag: float) -> dict:
    visc, dr = 2.0 * float(viscosity) * enstrophy, 2.0 * float(drag) * energy
    return {"injection": inj, "viscous_dissipation": visc, "drag_dissipation": dr,
            "residual": (inj - visc - dr) / inj if inj != 0 else float("nan")}


def _budget_of_batches(batches, viscosity: float, drag: float) -> dict:
    """The energy budget over generator batches ``{batch index: [⟨ε_in⟩, ⟨Z⟩, ⟨E⟩, runs]}`` (each
    batch's time- and run-averaged observables and its number of runs): run-weighted means, with
    ``n_batches`` and ``n_runs``."""
    rows = np.array(list(batches.values()), np.float64).reshape(-1, 4)
    w = rows[:, 3]
    inj, z, e = (rows[:, :3] * w[:, None]).sum(axis=0) / w.sum()
    return {**_budget_terms(float(inj), float(z), float(e), viscosity, drag), "n_batches": int(len(rows)),
            "n_runs": int(w.sum())}


def _merge_diagnostics(diag: dict, params) -> dict:
    """A sharded set's budget: over the batches of every shard (each shard's own covers its batches only)."""
    batches, nu, drag = diag.get("energy_budget_batches"), params.get("viscosity"), params.get("drag")
    # files of earlier versions have no per-batch records: their merged diagnostics stay as they are
    if isinstance(batches, dict) and batches and nu is not None and drag is not None \
            and all(isinstance(v, list) and len(v) == 4 for v in batches.values()):
        diag = {**diag, "energy_budget": _budget_of_batches(batches, nu, drag)}
    return diag


__all__.append("budget")


# ---- the `phigen generate turbulence` generator -------------------------------------------------
def run_groups(n: int, batch_size: int, snapshots_per_run: int) -> np.ndarray:
    """The run of each of ``n`` snapshots written in batches of ``batch_size``: batch b advances
    ``R = ceil(batch_size / S)`` fresh runs (S = ``snapshots_per_run``) and stores their snapshots
    run-major, so sample ``j`` of batch ``b`` comes from run ``b·R + j // S`` (int64; runs are
    numbered consecutively, ``i // S`` when S divides the batch size). Snapshots of one run are
    correlated: one group."""
    n, bs, s = int(n), int(batch_size), int(snapshots_per_run)
    i = np.arange(n, dtype=np.int64)
    return (i // bs) * (-(-bs // s)) + (i % bs) // s


def _build_turbulence(size: int, seed: int, *, n: int, path, progress, batch_size: int | None = None,
                      viscosity: float | None = None, drag: float = 0.1, forcing_wavenumber: int = 4,
                      forcing_amplitude: float = 1.0, dt: float | None = None, snapshots_per_run: int = 8,
                      velocity: bool = False):
    flow = kolmogorov_flow(size, viscosity=viscosity, dt=dt, drag=drag, forcing_wavenumber=forcing_wavenumber,
                           forcing_amplitude=forcing_amplitude)
    cfg = TurbulenceSamplerConfig(snapshots_per_run=snapshots_per_run, velocity=bool(velocity))
    key = jax.random.PRNGKey(seed)
    plan = prepare_turbulence(jax.random.fold_in(key, 0), flow, cfg)
    budgets: dict = {}
    bs = min(n, 64) if batch_size is None else int(batch_size)  # generate() passes the batch size in use
    groups = run_groups(n, bs, cfg.snapshots_per_run)

    def make_batch(b, count):  # group = run index (runs of a batch are fresh and independent)
        runs = -(-count // cfg.snapshots_per_run)
        fields, obs = sample_turbulence(jax.random.fold_in(jax.random.fold_in(key, 1), b), plan, runs)
        budgets[b] = [float(np.mean(np.asarray(a))) for a in (obs.injection, obs.enstrophy, obs.energy)] + [runs]
        return fields[:count], None, groups[b * bs: b * bs + count]

    def diagnostics():
        out = {"plan": plan.measured}
        if budgets:  # the batches of this process (all of them unless the run was resumed)
            # per batch (global index) as well: the shards of a sharded run merge these key by key,
            # and the set's budget is recomputed over all of them (_merge_diagnostics)
            out["energy_budget_batches"] = {str(b): v for b, v in sorted(budgets.items())}
            out["energy_budget"] = _budget_of_batches(budgets, flow.viscosity, flow.drag)
        return out

    params = {"viscosity": flow.viscosity, "drag": flow.drag, "forcing_wavenumber": flow.forcing_wavenumber,
              "forcing_amplitude": flow.forcing_amplitude, "dt": flow.dt,
              "spin_up_time": plan.spin_up_time, "decorrelation_time": plan.measured["decorrelation_time"],
              "snapshot_interval": plan.snapshot_interval}
    config = {"kind": "turbulence", "equation": "dw/dt + u.grad w = nu lap w - drag w - kf A cos(kf x), [0,2pi)^2",
              "stepper": "exponax.KolmogorovFlowVorticity (ETDRK2, pseudo-spectral)",
              "flow": asdict(flow), "sampler": asdict(cfg), "measured": plan.measured, "group_kind": "run"}
    if velocity:  # three channels: the generic writer reads the sample shape and names from here
        config.update(sample_shape=[3, size, size], field_names=["vorticity", "u_x", "u_y"])
    return make_batch, params, config, diagnostics


def generate_turbulence(path, *, size: int, n: int, seed: int = 0, velocity: bool = False, resume: bool = False,
                        overwrite: bool = False, progress: bool | None = None, batch_size: int = 64, **params):
    """Python twin of ``phigen generate turbulence``; ``velocity=True`` writes 3 channels
    ``(vorticity, u_x, u_y)`` (``field_names`` recorded). ``params``: viscosity, drag,
    forcing_wavenumber, forcing_amplitude, dt, snapshots_per_run."""
    from ..io import FieldsMeta, write_ensemble

    n = check_int_at_least(n, "n", 1)
    bs = check_int_at_least(min(n, int(batch_size)), "batch_size", 1)
    make_batch, resolved, config, diagnostics = _build_turbulence(size, seed, n=n, path=path, progress=progress,
                                                                  batch_size=bs, velocity=bool(velocity), **params)
    shape = (3, size, size) if velocity else (size, size)
    meta = FieldsMeta(field="turbulence", generator="phigen.generate:turbulence", shape=shape, n_total=n,
                      seed=seed, params=resolved, config=config, batch_size=bs,
                      field_names=("vorticity", "u_x", "u_y") if velocity else None, group_kind="run")
    return write_ensemble(path, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          diagnostics=diagnostics)


__all__.append("generate_turbulence")


def _field_statistics(fields, params) -> dict:
    """``flatness_r1`` = S₄/S₂² of the increments at the smallest separation, mean ± s.e. over fields."""
    from .._estimates import mean_se
    from ..stats.structure import flatness

    r, f = flatness(np.asarray(fields, dtype=np.float32))
    return {"flatness_r1": {**mean_se(np.asarray(f)[:, 0]), "r": float(np.asarray(r)[0])}}


def _groups(n: int, batch_size: int, config) -> tuple[np.ndarray, str, str]:
    s = int(config["sampler"]["snapshots_per_run"])
    r = -(-batch_size // s)
    return (run_groups(n, batch_size, s), "run",
            f"run index b*{r} + j//{s} of sample j of batch b (batch_size {batch_size}, snapshots_per_run {s})")


def _checks(path, *, out_dir=None, max_fields=None) -> dict:
    from ..checks.turbulence import check_turbulence_file

    return check_turbulence_file(path, out_dir=out_dir, max_fields=max_fields)


def _register():
    from .kind import FieldKind, FieldOption, register_field_kind

    register_field_kind(FieldKind(
        "turbulence", _build_turbulence, 64,
        "forced 2D Navier–Stokes vorticity (Kolmogorov flow k_f=4, drag 0.1), spun up, decorrelated snapshots",
        options=(FieldOption("viscosity", float, "kinematic viscosity ν (default: resolved for N)"),
                 FieldOption("drag", float, "linear drag α (default 0.1)"),
                 FieldOption("dt", float, "time step (default: CFL-safe for N)"),
                 FieldOption("forcing_wavenumber", int, "forcing wavenumber k_f (default 4)"),
                 FieldOption("forcing_amplitude", float, "forcing amplitude (default 1)"),
                 FieldOption("snapshots_per_run", int, "decorrelated snapshots kept per run (default 8)"),
                 FieldOption("velocity", bool, "also write u_x, u_y as channels")),
        groups=_groups,
        # 2D vorticity is invariant under φ → −φ combined with a reflection (in the dihedral group), not alone
        symmetries=("shifts", "dihedral", "sign"), sign_symmetric=False,
        statistics=_field_statistics, statistic_labels={"flatness_r1": "flatness (r=1)"},
        checks=_checks, merge_diagnostics=_merge_diagnostics))


_register()
