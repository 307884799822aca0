"""Projected cosmic web: 3D ΛCDM N-body (jaxpm + jax-cosmo), CIC painting, slab projections (docs/simulations.md).

Per simulation (one jitted call, cosmological parameters traced so a new (Ω_m, σ₈) does not recompile):

1. Gaussian initial density δ_L(k) on an N³ mesh of a periodic box of side ``box`` [Mpc/h] with the
   linear ΛCDM spectrum at z = 0, ``P_L(k)`` = jax-cosmo's Eisenstein–Hu transfer function, normalised
   to σ₈ (Ω_b = 0.0486 as in Planck15; Ω_c = Ω_m − Ω_b);
2. N³ particles on the lattice, displaced by 2LPT to a = ``a_init`` (0.1), then particle-mesh N-body
   (jaxpm's ODE, adaptive Dormand–Prince) to a = 1;
3. cloud-in-cell painting onto the N³ mesh (the painted mass equals the particle number);
4. each of the 3 axes cut into ``n_slabs`` slabs; each slab projected along the axis into an N×N map of
   the surface density contrast δ₂ = Σ/Σ̄ − 1; output ``log(1 + δ₂)``, with 1 + δ₂ floored at
   half a particle per pixel (so empty void pixels stay finite). ``3·n_slabs`` maps per simulation,
   recorded per sample as ``simulation``, ``axis``, ``slab``.

Two jax-cosmo ``Cosmology`` objects are built inside the jitted function, one for the power
spectrum and one for the dynamics: jax-cosmo caches background tables in ``cosmo._workspace`` and a
shared object clashes between jaxpm's growth ODE and ``linear_matter_power``.

Resolution note: jaxpm paints with one mesh cell per particle, so the PM force is smoothed on the
scale of a few cells; the measured 3D power at k ≲ k_Nyquist/8 is within a few percent of linear
theory × D² (tests and ``data/README.md`` give the numbers), and smaller scales are under-resolved
as in any particle-per-cell PM run.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import errors as E
from .._validation import check_int_at_least

__all__ = [
    "CosmicWebConfig",
    "Cosmology",
    "OMEGA_B",
    "RANGES",
    "check_cosmology",
    "latin_hypercube",
    "linear_power",
    "simulate_density",
    "project_slabs",
    "log_density",
    "matter_power_3d",
    "cosmic_web_maps",
]

OMEGA_B = 0.0486
RANGES = {"omega_m": (0.1, 0.7), "sigma8": (0.2, 1.5), "h": (0.5, 0.9), "n_s": (0.8, 1.2)}
MIN_SIZE, MAX_SIZE = 16, 512


class Cosmology(NamedTuple):
    """The varied ΛCDM parameters (flat, Ω_b = 0.0486)."""

    omega_m: float = 0.3075          # Planck15: Ω_c + Ω_b = 0.2589 + 0.0486
    sigma8: float = 0.8159
    h: float = 0.6774
    n_s: float = 0.9667


def check_cosmology(omega_m=None, sigma8=None, h=None, n_s=None) -> Cosmology:
    """Validated :class:`Cosmology` (defaults Planck15); each value must lie in :data:`RANGES`."""
    base = Cosmology()
    values = {"omega_m": omega_m, "sigma8": sigma8, "h": h, "n_s": n_s}
    out = {}
    for name, v in values.items():
        v = getattr(base, name) if v is None else v
        lo, hi = RANGES[name]
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise E.ParameterError(f"{name} must be a number; got {v!r}") from None
        if not (math.isfinite(fv) and lo <= fv <= hi):
            raise E.ParameterError(f"{name} must be in [{lo}, {hi}]; got {v!r}")
        out[name] = fv
    return Cosmology(**out)


def _jc_cosmology(c):
    import jax_cosmo as jc

    return jc.Planck15(Omega_c=c[0] - OMEGA_B, sigma8=c[1], h=c[2], n_s=c[3])


def linear_power(k, cosmology: Cosmology = Cosmology(), a: float = 1.0) -> np.ndarray:
    """Linear matter power ``P_L(k, a)`` [(Mpc/h)³] at k [h/Mpc] (jax-cosmo, Eisenstein–Hu, σ₈-normalised,
    times the growth D(a)² with D(1) = 1)."""
    c = check_cosmology(*cosmology)
    kk = np.atleast_1d(np.asarray(k, dtype=np.float64))
    if np.any(kk <= 0):
        raise E.InputError("k must be positive")
    if not (0.0 < float(a) <= 1.0):
        raise E.ParameterError(f"a must be in (0, 1]; got {a!r}")
    with _quiet_jax_cosmo():
        pk = _linear_power_jit(jnp.asarray(c, jnp.float32), jnp.asarray(kk.ravel(), jnp.float32), jnp.float32(a))
    return np.asarray(pk, dtype=np.float64).reshape(kk.shape)


@contextmanager
def _quiet_jax_cosmo():
    """jax-cosmo's interpolation asks for int64 indices, which JAX's default 32-bit mode gives as
    int32 with a UserWarning at every trace; int32 is exact for its tables (hundreds of entries), so
    the warning tells a user nothing. Only that warning is silenced, only around jax-cosmo calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Explicitly requested dtype int64", category=UserWarning)
        yield


@jax.jit
def _linear_power_jit(c, k, a):
    import jax_cosmo as jc

    # jax-cosmo evaluated op by op takes seconds; jitted, a few milliseconds
    return jc.power.linear_matter_power(_jc_cosmology(c), k, a=a)


@dataclass(frozen=True)
class CosmicWebConfig:
    """Grid and projection: ``size`` N (particles = mesh cells = N³, maps N×N), ``box`` [Mpc/h],
    ``n_slabs`` per axis, initial scale factor, ODE tolerance."""

    size: int = 64
    box: float | None = None          # default 2·size Mpc/h (2 Mpc/h cells)
    n_slabs: int = 4
    a_init: float = 0.1
    tolerance: float = 1e-5
    lpt_order: int = 2

    def __post_init__(self):
        s = self.size
        if int(s) != s or s % 2 or not (MIN_SIZE <= s <= MAX_SIZE):
            raise E.ParameterError(f"cosmic-web size must be an even integer in [{MIN_SIZE}, {MAX_SIZE}]; got {s!r}")
        object.__setattr__(self, "size", int(s))
        box = 2.0 * s if self.box is None else self.box
        try:
            box = float(box)
        except (TypeError, ValueError):
            raise E.ParameterError(f"box must be a number (Mpc/h); got {self.box!r}") from None
        if not (math.isfinite(box) and box > 0):
            raise E.ParameterError(f"box must be > 0 (Mpc/h); got {self.box!r}")
        object.__setattr__(self, "box", box)
        n = check_int_at_least(self.n_slabs, "n_slabs", 1)
        if s % n:
            raise E.ParameterError(f"n_slabs ({n}) must divide size ({s})")
        object.__setattr__(self, "n_slabs", n)
        if not (0.0 < self.a_init < 1.0):
            raise E.ParameterError(f"a_init must be in (0, 1); got {self.a_init!r}")
        if not (0.0 < self.tolerance < 1e-2):
            raise E.ParameterError(f"tolerance must be in (0, 1e-2); got {self.tolerance!r}")
        if self.lpt_order not in (1, 2):
            raise E.ParameterError(f"lpt_order must be 1 or 2; got {self.lpt_order!r}")

    @property
    def maps_per_simulation(self) -> int:
        return 3 * self.n_slabs


@lru_cache(maxsize=8)
def _compiled(config: CosmicWebConfig):
    """Jitted ``run(key, cosmo_vector (4,)) -> (linear δ (N,N,N), painted mass (N,N,N))``."""
    import jax_cosmo as jc
    from jax.experimental.ode import odeint
    from jaxpm.painting import cic_paint
    from jaxpm.pm import linear_field, lpt, make_ode_fn

    n = config.size
    mesh = (n, n, n)
    box = (config.box,) * 3
    k_table = jnp.logspace(-4, 1, 256)

    def run(key, c):
        pk = jc.power.linear_matter_power(_jc_cosmology(c), k_table)
        pk_fn = lambda x: jc.scipy.interpolate.interp(x.reshape([-1]), k_table, pk).reshape(x.shape)
        delta_lin = linear_field(mesh, box, pk_fn, seed=key)
        cosmo = _jc_cosmology(c)  # separate object: see the module docstring
        grid = jnp.stack(jnp.meshgrid(*[jnp.arange(s, dtype=jnp.float32) for s in mesh], indexing="ij"), axis=-1)
        dx, p, _ = lpt(cosmo, delta_lin, grid, a=config.a_init, order=config.lpt_order)
        traj = odeint(make_ode_fn(mesh), [grid + dx, p], jnp.array([config.a_init, 1.0]), cosmo,
                      rtol=config.tolerance, atol=config.tolerance)
        positions = traj[0][-1]
        mass = cic_paint(jnp.zeros(mesh), positions)
        return delta_lin, mass

    return jax.jit(run)


def simulate_density(key, cosmology: Cosmology, config: CosmicWebConfig):
    """One N-body simulation. Returns ``(linear δ_L at z=0 (N,N,N), CIC mass per cell at z=0 (N,N,N))``;
    the mass sums to N³ (one unit per particle)."""
    c = check_cosmology(*cosmology)
    run = _compiled(config)
    with _quiet_jax_cosmo():
        delta_lin, mass = run(key, jnp.asarray(c, jnp.float32))
    mass = np.asarray(mass)
    if not np.all(np.isfinite(mass)):
        raise E.DivergenceError("cosmic-web N-body produced NaN/inf densities")
    return np.asarray(delta_lin), mass


def project_slabs(mass, n_slabs: int) -> np.ndarray:
    """Surface density contrast of slabs: ``mass (N,N,N)`` → ``(3·n_slabs, N, N)`` maps
    ``Σ/Σ̄ − 1``, ordered axis-major (axis 0 slabs 0..n−1, then axis 1, axis 2); each map keeps the
    two remaining axes in their original order."""
    m = np.asarray(mass, dtype=np.float64)
    n = m.shape[0]
    if m.ndim != 3 or m.shape != (n, n, n):
        raise E.InputError(f"mass must be a cubic (N, N, N) mesh; got {m.shape}")
    n_slabs = check_int_at_least(n_slabs, "n_slabs", 1)
    if n % n_slabs:
        raise E.ParameterError(f"n_slabs ({n_slabs}) must divide N ({n})")
    t = n // n_slabs
    maps = []
    for axis in range(3):
        moved = np.moveaxis(m, axis, 0).reshape(n_slabs, t, n, n).sum(axis=1)
        maps.append(moved)
    maps = np.concatenate(maps, axis=0)
    mean = maps.mean(axis=(-2, -1), keepdims=True)
    return maps / mean - 1.0


def log_density(delta, *, floor: float) -> np.ndarray:
    """``log(max(1 + δ, floor))``: finite even for empty pixels."""
    if not floor > 0:
        raise E.ParameterError(f"floor must be > 0; got {floor!r}")
    return np.log(np.maximum(1.0 + np.asarray(delta, dtype=np.float64), floor))


def cosmic_web_maps(key, cosmology: Cosmology, config: CosmicWebConfig):
    """``log(1 + δ₂)`` maps ``(3·n_slabs, N, N)`` float32 of one simulation (and the 3D mass mesh).

    The floor is half a particle per pixel: ``1 + δ₂ ≥ 1 / (2 n̄)`` with n̄ = N / n_slabs particles
    per pixel column of a slab."""
    _, mass = simulate_density(key, cosmology, config)
    delta2 = project_slabs(mass, config.n_slabs)
    floor = config.n_slabs / (2.0 * config.size)
    return log_density(delta2, floor=floor).astype(np.float32), mass


def matter_power_3d(delta, box: float, *, n_bins: int | None = None, deconvolve_cic: bool = False):
    """Isotropic 3D power spectrum of a periodic density contrast ``(N, N, N)`` in a box of side
    ``box``: ``P(k) = box³ ⟨|δ̂_k|²⟩ / N⁶`` [(Mpc/h)³] averaged in shells of width k_F = 2π/box
    centred on multiples of k_F up to the Nyquist k_N = π N / box. ``deconvolve_cic`` divides by the
    CIC window ``W²(k) = Π_i sinc⁴(k_i box / 2N)``. Returns ``(k (nk,), P (nk,), modes (nk,))``,
    the modes counting each ±k pair once."""
    d = np.asarray(delta, dtype=np.float64)
    n = d.shape[0]
    if d.ndim != 3 or d.shape != (n, n, n):
        raise E.InputError(f"delta must be a cubic (N, N, N) mesh; got {d.shape}")
    if not (np.isfinite(box) and box > 0):
        raise E.ParameterError(f"box must be > 0; got {box!r}")
    dk = np.fft.rfftn(d)
    power = (dk.real**2 + dk.imag**2) * box**3 / float(n) ** 6
    kf = 2.0 * np.pi / box
    m = np.fft.fftfreq(n, 1.0 / n)
    mz = np.fft.rfftfreq(n, 1.0 / n)
    kx, ky, kz = np.meshgrid(m, m, mz, indexing="ij")
    kmag = kf * np.sqrt(kx**2 + ky**2 + kz**2)
    if deconvolve_cic:
        w = (np.sinc(kx / n) * np.sinc(ky / n) * np.sinc(kz / n)) ** 2  # np.sinc(x) = sin(πx)/(πx)
        power = power / w**2
    # rfft stores half the modes: count the kz = 0 and Nyquist planes once, others twice
    weight = np.where((kz == 0) | (kz == n // 2), 1.0, 2.0)
    k_nyq = np.pi * n / box
    n_shell = int(np.floor(k_nyq / kf)) if n_bins is None else int(n_bins)
    edges = kf * (np.arange(n_shell + 1) + 0.5) if n_bins is None else np.linspace(0.5 * kf, k_nyq, n_shell + 1)
    idx = np.digitize(kmag.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < n_shell)
    w_ = weight.ravel()[ok]
    cnt = np.bincount(idx[ok], weights=w_, minlength=n_shell)
    psum = np.bincount(idx[ok], weights=w_ * power.ravel()[ok], minlength=n_shell)
    ksum = np.bincount(idx[ok], weights=w_ * kmag.ravel()[ok], minlength=n_shell)
    keep = cnt > 0
    return ksum[keep] / cnt[keep], psum[keep] / cnt[keep], cnt[keep] / 2.0


def latin_hypercube(key, n: int, ranges) -> np.ndarray:
    """``n`` points of a Latin hypercube over the boxes ``ranges`` ``[(lo, hi), ...]`` → ``(n, d)``:
    each dimension's n strata are hit exactly once, in independent random orders, with a uniform
    position inside each stratum."""
    n = check_int_at_least(n, "n", 1)
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.ndim != 2 or ranges.shape[1] != 2 or np.any(ranges[:, 1] < ranges[:, 0]):
        raise E.ParameterError(f"ranges must be [(lo, hi), ...] with lo <= hi; got {ranges.tolist()}")
    d = ranges.shape[0]
    k_perm, k_u = jax.random.split(key)
    perms = np.stack([np.asarray(jax.random.permutation(k, n)) for k in jax.random.split(k_perm, d)], axis=1)
    u = np.asarray(jax.random.uniform(k_u, (n, d)), dtype=np.float64)
    unit = (perms + u) / n
    return ranges[:, 0] + unit * (ranges[:, 1] - ranges[:, 0])


# ---- the `phigen generate cosmic-web` generator ---------------------------------------------------
CONDITION_NAMES = ("omega_m", "sigma8", "h", "n_s", "simulation", "axis", "slab")
__all__ += ["CONDITION_NAMES", "simulation_table", "simulation_groups", "generate_cosmic_web"]


def simulation_groups(n: int, maps_per_simulation: int) -> np.ndarray:
    """The simulation of each of ``n`` maps written one simulation per batch of ``3·n_slabs`` maps:
    ``i // maps_per_simulation`` (int64; the ``simulation`` column of ``conditions``). Maps of one
    simulation share its large-scale modes: one group."""
    return np.arange(int(n), dtype=np.int64) // int(maps_per_simulation)


def simulation_table(seed: int, n_simulations: int, cosmology: Cosmology, *, omega_m_range=None,
                     sigma8_range=None) -> np.ndarray:
    """Cosmology of each simulation ``(n_sims, 4)`` (Ω_m, σ₈, h, n_s): fixed, or with (Ω_m, σ₈) drawn
    from a Latin hypercube over the given ranges (deterministic in ``seed``)."""
    table = np.tile(np.asarray(cosmology, dtype=np.float64), (n_simulations, 1))
    draws = [(0, "omega_m", omega_m_range), (1, "sigma8", sigma8_range)]
    active = [(i, name, r) for i, name, r in draws if r is not None]
    if active:
        ranges = []
        for _, name, r in active:
            lo, hi = (float(v) for v in r)
            check_cosmology(**{name: lo})
            check_cosmology(**{name: hi})
            if not lo < hi:
                raise E.ParameterError(f"{name} range must have lo < hi; got {r!r}")
            ranges.append((lo, hi))
        pts = latin_hypercube(jax.random.fold_in(jax.random.PRNGKey(seed), 7), n_simulations, ranges)
        for j, (i, _, _) in enumerate(active):
            table[:, i] = pts[:, j]
    return table


def _parse_range(value, name):
    from .kind import parse_range

    return None if value is None else parse_range(value, f"{name} range")


def _build_cosmic_web(size: int, seed: int, *, n: int, path, progress, box: float | None = None,
                      omega_m: float | None = None, sigma8: float | None = None, h: float | None = None,
                      n_s: float | None = None, n_slabs: int = 4, omega_m_range=None, sigma8_range=None,
                      _with_conditions: bool = True):
    config = CosmicWebConfig(size=size, box=box, n_slabs=n_slabs)
    cosmology = check_cosmology(omega_m, sigma8, h, n_s)
    om_r, s8_r = _parse_range(omega_m_range, "omega_m"), _parse_range(sigma8_range, "sigma8")
    per_sim = config.maps_per_simulation
    n_sims = -(-n // per_sim)
    table = simulation_table(seed, n_sims, cosmology, omega_m_range=om_r, sigma8_range=s8_r)
    key = jax.random.PRNGKey(seed)
    axis = np.repeat(np.arange(3), config.n_slabs)
    slab = np.tile(np.arange(config.n_slabs), 3)

    def conditions_of(sim):
        c = np.tile(table[sim], (per_sim, 1))
        return np.column_stack([c, np.full(per_sim, sim), axis, slab]).astype(np.float32)

    def make_batch(b, count):  # one batch = one simulation = one group
        maps, _ = cosmic_web_maps(jax.random.fold_in(key, b), Cosmology(*table[b]), config)
        groups = np.full(count, b, dtype=np.int64)
        return maps[:count], (conditions_of(b)[:count] if _with_conditions else None), groups

    params = {"box": config.box, "omega_m": cosmology.omega_m, "sigma8": cosmology.sigma8, "h": cosmology.h,
              "n_s": cosmology.n_s, "omega_b": OMEGA_B, "n_slabs": config.n_slabs,
              "pixel_size": config.box / config.size, "slab_thickness": config.box / config.n_slabs,
              "omega_m_range": list(om_r) if om_r else "fixed", "sigma8_range": list(s8_r) if s8_r else "fixed"}
    cfg = {"kind": "cosmic-web", "units": "box in Mpc/h; fields are log(1 + delta_2D) of slab surface density",
           "pipeline": "jax-cosmo Eisenstein-Hu P_L(z=0) -> jaxpm linear_field -> 2LPT to a_init -> "
                       "PM N-body (odeint) to a=1 -> CIC paint -> slab projection -> log(max(1+delta, floor))",
           "log_floor": config.n_slabs / (2.0 * config.size), "maps_per_simulation": per_sim,
           "condition_names": list(CONDITION_NAMES), **asdict(config),
           "simulations": table.tolist(), "group_kind": "simulation"}
    if not _with_conditions:
        cfg.pop("condition_names")
    return make_batch, params, cfg, None


def _batch_size(n, params):
    return min(n, 3 * int(params.get("n_slabs", 4)))


def generate_cosmic_web(path, *, size: int, n: int, seed: int = 0, resume: bool = False, overwrite: bool = False,
                        progress: bool | None = None, **params):
    """Python twin of ``phigen generate cosmic-web`` that also writes the per-sample ``conditions``
    (Ω_m, σ₈, h, n_s, simulation, axis, slab). ``params``: box, omega_m, sigma8, h, n_s, n_slabs,
    omega_m_range, sigma8_range (ranges turn on Latin-hypercube draws per simulation)."""
    from ..io import FieldsMeta, write_ensemble

    size = check_int_at_least(size, "size", 4)
    n = check_int_at_least(n, "n", 1)
    make_batch, resolved, config, diagnostics = _build_cosmic_web(size, seed, n=n, path=path, progress=progress,
                                                                  _with_conditions=True, **params)
    meta = FieldsMeta(field="cosmic-web", generator="phigen.generate:cosmic-web", shape=(size, size), n_total=n,
                      seed=seed, params=resolved, config=config, batch_size=_batch_size(n, resolved),
                      condition_names=CONDITION_NAMES, group_kind="simulation")
    return write_ensemble(path, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          diagnostics=diagnostics)


def _field_statistics(fields, params) -> dict:
    """Peak counts per map (``peaks``) and those higher than 2σ (``peaks_nu_gt_2``), mean ± s.e."""
    from .._estimates import mean_se
    from ..checks.cosmic_web import peak_counts

    edges, counts = peak_counts(np.asarray(fields, dtype=np.float32))
    counts = np.asarray(counts)
    high = counts[:, edges[:-1] >= 2.0].sum(axis=1)
    return {"peaks": mean_se(counts.sum(axis=1)), "peaks_nu_gt_2": mean_se(high)}


def _groups(n: int, batch_size: int, config) -> tuple[np.ndarray, str, str]:
    per = int(config["maps_per_simulation"])
    if batch_size != min(n, per):
        raise E.ParameterError(f"cosmic-web writes one simulation per batch: batch_size {batch_size} does not "
                               f"match maps_per_simulation = {per}")
    return simulation_groups(n, per), "simulation", f"simulation index i // {per} (maps_per_simulation)"


def _checks(path, *, out_dir=None, max_fields=None) -> dict:
    from ..checks.cosmic_web import check_cosmic_web_file

    return check_cosmic_web_file(path, out_dir=out_dir, max_fields=max_fields)


def _register():
    from .kind import FieldKind, FieldOption, register_field_kind

    register_field_kind(FieldKind(
        "cosmic-web", _build_cosmic_web, 12,
        "log(1+δ) slab projections of ΛCDM PM N-body simulations (jaxpm + jax-cosmo), 3·n_slabs maps per simulation",
        batch_size=_batch_size,
        options=(FieldOption("box", float, "box side in Mpc/h"),
                 FieldOption("omega_m", float, "Ω_m"),
                 FieldOption("sigma8", float, "σ₈"),
                 FieldOption("h", float, "reduced Hubble constant h"),
                 FieldOption("n_s", float, "spectral index n_s"),
                 FieldOption("n_slabs", int, "slabs per axis"),
                 FieldOption("omega_m_range", "range", "Latin-hypercube draws of Ω_m per simulation"),
                 FieldOption("sigma8_range", "range", "Latin-hypercube draws of σ₈ per simulation")),
        groups=_groups,
        # a log-density map is not invariant under φ → −φ
        symmetries=("shifts", "dihedral"), sign_symmetric=False,
        statistics=_field_statistics, statistic_labels={"peaks": "peaks/field", "peaks_nu_gt_2": "peaks ν>2"},
        checks=_checks))


_register()
