"""The scattering-spectra generative models, registered as model kind ``"scattering"``.

``mode="micro"`` (microcanonical): fit = Φ̄ and its spread σ over the training fields (Φ the
scattering spectra of :class:`~phigen.scattering.ScatteringSpectra`, normalised by the data's mean
wavelet power, which keeps the loss landscape stable; with ONE map, or copies of one, σ is the
single-map scale :meth:`~phigen.scattering.ScatteringSpectra.single_map_scale`) and the data's
power per Fourier mode P̄(k), zero outside the data's band; sample = a field with the power P̄
per mode and random phases (exactly P̄ for one map; a Gaussian sample of P̄ for N maps), driven
by L-BFGS (restricted to the band; the grid corners |k| > π keep their start) to minimise
ℓ(x) = mean_i ((Φ_i(x) − Φ̄_i)/σ_i)² (:mod:`phigen.scattering.synthesis`). No mode keeps white
starting noise: the corners, which Φ barely sees, start (and stay) at the data's power; modes
outside the band stay exactly empty.

``mode="canonical"`` (the Gibbs twin of micro, :mod:`phigen.scattering.canonical`): the
microcanonical model plus an inverse temperature β, ``U_β(z) = ½|z|² + (β/2)|(Φ(x(z)) − Φ̄)/σ|²`` on
the latent z of the data's Gaussian reference (built from P̄); sample = HMC chains started at the
microcanonical syntheses (``sample_steps`` iterations, two thirds of them adapting the step size).

``mode="maxent"`` (macrocanonical Gibbs model): ``U_θ(z) = ½|z|² + θ·(Φ(x(z)) − Φ̄)/σ`` relative to
the data's Gaussian model, θ fitted by moment matching with persistent MALA chains, sampled with
the phigen MALA/HMC samplers (:mod:`phigen.scattering.maxent`). Here Φ is normalised by each
field's own wavelet power, so the energy stays bounded below for every θ; the Gaussian reference
has no amplitude outside the data's band, so samples have no power there either.

``n_params`` counts the numbers fitted from the data that define the model. micro: Φ̄ and σ (2n),
the reference wavelet power (J·L), pixel mean and std (2), the start spectrum P̄ (H·(W//2+1));
canonical: micro's and β (the Gaussian reference is P̄'s).
maxent: θ/σ (n: Φ̄ and σ only
re-parametrise θ), the Gaussian reference (H·(W//2+1) + 1). Every mode: with ``marginal_bins=B``,
the B levels and B widths of the pixel-PDF statistics (:mod:`phigen.scattering.marginal`) appended
to Φ. micro and canonical: ``shell_power=True`` appends the log power per shell of the band
(:mod:`phigen.scattering.shell_power`; its references come from P̄, its Φ̄ and σ are counted in n);
``minkowski_thresholds=B`` appends smooth Minkowski functionals V0, V1, V2 at B thresholds
(:mod:`phigen.scattering.morphology`; + the B levels and B widths); ``peak_bins=B`` appends smooth peak
counts in B height bins (:mod:`phigen.scattering.peak_counts`; + the B − 1 edges, μ, σ and τ);
``detail_power=True`` appends the log power of each periodic-DWT detail channel over J levels
(:mod:`phigen.scattering.detail_power`; + the 3J reference powers).
``pooled_power=True`` (micro and canonical) sets the target of every log-power entry (log S2, shells,
details) to the log of the training fields' mean power rather than their mean log power
(:func:`pooled_power_target`: samples sit at the target, so this is what makes their mean power the data's).

Command line: ``phigen fit scattering DATA.h5 --J 4 --L 4 --mode micro|canonical|maxent -o model.h5`` then
``phigen sample model.h5 -n 64 -o samples.h5`` (``--set steps=…`` changes the sampling steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from .canonical import canonical_energy, check_beta, field_to_latent, reference_amplitude, sample_canonical
from .marginal import ConcatenatedStatistics, MarginalStatistics
from .morphology import MinkowskiStatistics
from .detail_power import DetailPowerStatistics
from .peak_counts import PeakStatistics
from .shell_power import ShellPowerStatistics
from .maxent import (MaxEntConfig, MaxEntParams, fit_maxent, latent_to_field, maxent_energy, moment_residual,
                     sample_maxent)
from .spectra import ScatteringSpectra
from .synthesis import (SynthesisConfig, band_power, has_spread, outside_nyquist_circle, statistics_loss,
                        statistics_scales, synthesize)

__all__ = ["ScatteringModel", "ScatteringConfig", "default_J"]

MODES = ("micro", "canonical", "maxent")
DEFAULT_BETA = 100.0
DEFAULT_SAMPLE_STEPS = {"maxent": 500, "canonical": 60}


@dataclass(frozen=True)
class ScatteringConfig:
    """Options of :meth:`ScatteringModel.fit` (docs/scattering.md). ``J`` scales (default
    :func:`default_J`), ``L`` orientations, ``isotropic``, ``strict_scales``; ``mode`` ``"micro"``
    (``steps`` L-BFGS iterations per sample, default 300; ``batch_size`` fields synthesised together)
    or ``"canonical"`` (micro's options, plus ``beta`` and ``sample_steps`` HMC iterations per
    sampling run, default 60) or ``"maxent"`` (``steps`` moment-matching updates, default 200, with ``n_chains``,
    ``steps_per_iteration``, ``learning_rate``, ``selection``, ``patience``, ``theta_prior`` and
    ``marginal_bins``: :class:`~phigen.scattering.maxent.MaxEntConfig`; ``sample_steps`` MALA steps
    per sampling run, default 500). Any mode: ``marginal_bins`` pixel-PDF statistics appended to Φ;
    micro and canonical: ``shell_power`` appends the log power per shell of the band,
    ``minkowski_thresholds`` smooth Minkowski functionals, ``peak_bins`` smooth peak counts,
    ``detail_power`` the log power of each DWT detail channel (J levels × 3 orientations);
    ``pooled_power`` sets every log-power target to the log of the training fields' mean power."""

    J: int | None = None
    L: int = 4
    mode: str = "micro"
    isotropic: bool = True
    orientation_power: bool = False
    strict_scales: bool = False
    steps: int | None = None
    sample_steps: int | None = None
    beta: float | None = None
    n_chains: int = 64
    steps_per_iteration: int = 10
    learning_rate: float = 0.5
    batch_size: int | None = None
    selection: str = "best"
    patience: int | None = 4
    marginal_bins: int = 0
    theta_prior: float = 0.0
    shell_power: bool = False
    minkowski_thresholds: int = 0
    peak_bins: int = 0
    detail_power: bool = False
    pooled_power: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.shell_power and self.mode == "maxent":
            raise ParameterError("shell_power (log power per shell) is an option of modes 'micro' and 'canonical' "
                                 "only: in a max-ent potential θ·log P_b is unbounded below as P_b → 0")
        if self.minkowski_thresholds and self.mode == "maxent":
            raise ParameterError("minkowski_thresholds (smooth Minkowski functionals) is an option of modes 'micro' "
                                 "and 'canonical' only: their curvature term is not bounded in a max-ent potential")
        if self.peak_bins and self.mode == "maxent":
            raise ParameterError("peak_bins (smooth peak counts) is an option of modes 'micro' and 'canonical' only")
        if self.detail_power and self.mode == "maxent":
            raise ParameterError("detail_power (log power per DWT detail channel) is an option of modes 'micro' and "
                                 "'canonical' only: in a max-ent potential θ·log ⟨d²⟩ is unbounded below as ⟨d²⟩ → 0")
        if self.pooled_power and self.mode == "maxent":
            raise ParameterError("pooled_power (log-power targets at the log of the mean power) is an option of "
                                 "modes 'micro' and 'canonical' only: max-ent matches ensemble means by construction")
        if self.beta is not None and self.mode != "canonical":
            raise ParameterError("beta (the inverse temperature) is an option of mode 'canonical' only")


def default_J(shape) -> int:
    """Scales used when ``J`` is not given: log2(min(H, W)) − 2, between 1 and 7 (64² → 4, 256² → 6)."""
    return int(min(7, max(1, math.floor(math.log2(min(shape))) - 2)))


def _statistics(shape, J, L, isotropic, reference_s2, strict_scales=False,
                orientation_power=False) -> ScatteringSpectra:
    return ScatteringSpectra(tuple(shape), J, L, isotropic=isotropic, reference_s2=reference_s2,
                             strict_scales=strict_scales, orientation_power=orientation_power)


def _assemble(spectra, marginal=None, shells=None, minkowski=None, peaks=None, details=None):
    """Φ: the scattering spectra, then the optional pixel-PDF, shell-power, Minkowski, peak-count and
    detail-power parts, in that order (the order of ``target`` and ``scale``; files depend on it)."""
    parts = tuple(p for p in (spectra, marginal, shells, minkowski, peaks, details) if p is not None)
    return parts[0] if len(parts) == 1 else ConcatenatedStatistics(parts)


def log_power_mask(stats) -> np.ndarray:
    """Which entries of Φ are logs of a power (log S2, the shell and the detail powers): boolean (n,)."""
    if isinstance(stats, ConcatenatedStatistics):
        return np.concatenate([log_power_mask(p) for p in stats.parts])
    if isinstance(stats, ScatteringSpectra):
        return np.array([e["type"] == "S2" and e.get("transform") == "log" for e in stats.describe()])
    return np.full(stats.n_stats, isinstance(stats, (ShellPowerStatistics, DetailPowerStatistics)))


def pooled_power_target(rows, target, mask) -> np.ndarray:
    """``target`` with the log-power entries (``mask``) set to log mean_fields exp(Φ_i), the log of the
    mean power, instead of the mean log power.

    Why: a microcanonical sample sits at Φ = Φ̄ (a canonical one within β^−½ of the spread), so every
    sample has the same power, exp(Φ̄). With Φ̄ the mean of log P, the samples' mean power is the
    training fields' geometric mean, below their arithmetic mean by about exp(−s²/2) for a spread s of
    log P across fields: 7 % of the power (3.5 % of the std) on 64² turbulence, where the snapshots'
    detail power varies by s ≈ 0.4; nothing on the cosmic web (s ≈ 0.1). Pooled spectra and stds per
    scale compare arithmetic means."""
    rows = np.asarray(rows, np.float64)
    out = np.array(target, np.float64)
    if np.any(mask):
        r = rows[:, mask]
        top = r.max(axis=0)
        out[mask] = top + np.log(np.mean(np.exp(r - top), axis=0))
    return out.astype(np.float32)


def _rows(stats, x, chunk=16) -> np.ndarray:
    return np.concatenate([np.asarray(stats(jnp.asarray(x[i:i + chunk])), np.float64)
                           for i in range(0, x.shape[0], chunk)])


@register_model("scattering")
class ScatteringModel:
    """Scattering-spectra model of stationary 2D fields, microcanonical or maximum-entropy (module doc).

    Build with :meth:`fit`; ``sample(n, key=…)`` returns ``(n, H, W)`` float32 fields.
    """

    def __init__(self, *, mode: str, shape, J: int, L: int, isotropic: bool, reference_s2, target, scale,
                 mean: float, std: float, steps: int, maxent: MaxEntParams | None = None,
                 sample_steps: int = 500, training: dict | None = None, strict_scales: bool = False,
                 start_power=None, marginal: MarginalStatistics | None = None, orientation_power: bool = False,
                 beta: float | None = None, shell_power: bool = False,
                 minkowski: MinkowskiStatistics | None = None, peaks: PeakStatistics | None = None,
                 details: DetailPowerStatistics | None = None, pooled_power: bool = False):
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}; got {mode!r}")
        if mode == "maxent" and maxent is None:
            raise ParameterError("a maxent model needs its fitted parameters")
        if mode == "canonical" and start_power is None:
            raise ParameterError("a canonical model needs the data's power per mode (start_power)")
        self.mode, self.J, self.L, self.isotropic = mode, int(J), int(L), bool(isotropic)
        self.beta = check_beta(DEFAULT_BETA if beta is None else beta) if mode == "canonical" else None
        self.strict_scales = bool(strict_scales)
        self._shape = tuple(int(s) for s in shape)
        self.reference_s2 = None if reference_s2 is None else np.asarray(reference_s2, np.float32)
        self.target = np.asarray(target, np.float32)
        self.scale = np.asarray(scale, np.float32)
        self.mean, self.std = float(mean), float(std)
        self.steps, self.sample_steps = int(steps), int(sample_steps)
        self.maxent = maxent
        # (H, W//2+1) data power per mode, 0 outside the band (micro; None in files of earlier versions:
        # white-noise start over the whole plane, as those versions did)
        self.start_power = None if start_power is None else np.asarray(start_power, np.float32)
        self.training = dict(training or {})
        self.marginal = marginal
        self.spectra = _statistics(self._shape, self.J, self.L, self.isotropic, self.reference_s2,
                                   self.strict_scales, bool(orientation_power))
        self.orientation_power = self.spectra.plan.orientation_power  # off without isotropy (the plan says)
        self.shell_power = bool(shell_power)
        if self.shell_power and (mode == "maxent" or self.start_power is None):
            raise ParameterError("shell_power needs a micro or canonical model with the data's power per mode")
        if (minkowski is not None or peaks is not None or details is not None) and mode == "maxent":
            raise ParameterError("Minkowski, peak-count and detail-power statistics are for micro and canonical "
                                 "models only")
        self.minkowski, self.peaks, self.details = minkowski, peaks, details
        self.pooled_power = bool(pooled_power)  # how the targets were set (they are stored as fitted)
        shells = ShellPowerStatistics.from_power(self.start_power, self._shape) if self.shell_power else None
        self.statistics = _assemble(self.spectra, marginal, shells, minkowski, peaks, details)
        self._loss = None     # built on first use and kept: the compiled synthesis is cached on it
        self._energy = None
        self.last_synthesis = None
        self.last_chains = None  # canonical: step size, leapfrog steps, acceptance of the last sampling run

    # -- protocol --------------------------------------------------------------------------------
    @property
    def field_shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def n_stats(self) -> int:
        return int(self.target.shape[0])

    @property
    def n_params(self) -> int:
        n = self.n_stats
        jl = 0 if self.reference_s2 is None else self.reference_s2.size
        if self.mode in ("micro", "canonical"):
            return 2 * n + jl + 2 + (0 if self.start_power is None else self.start_power.size) + (
                self.mode == "canonical") + (0 if self.marginal is None else 2 * self.marginal.n_stats) + (
                0 if self.minkowski is None else 2 * int(self.minkowski.levels.shape[0])) + (
                0 if self.peaks is None else int(self.peaks.edges.shape[0]) + 3) + (
                0 if self.details is None else self.details.n_stats)
        h, w = self._shape
        return n + jl + h * (w // 2 + 1) + 1 + (0 if self.marginal is None else 2 * self.marginal.n_stats)

    fit_config = ScatteringConfig  # fit(..., config=None, **options): every field is an option

    @classmethod
    def fit(cls, fields, *, key, progress=None, config: "ScatteringConfig | None" = None, **options):
        """Fit on ``fields`` (N, H, W). ``config`` / ``options``: :class:`ScatteringConfig` (options
        override its fields).

        ``J`` scales (default :func:`default_J`), ``L`` orientations, ``isotropic`` reduction
        (``orientation_power``: keep log S2 per orientation in it, docs/scattering.md),
        ``strict_scales`` (j1 < j2 < j3 only: the compact set of the reference code, 1013 statistics
        for J = 6, L = 4, instead of 1637).
        micro: ``steps`` = L-BFGS iterations each sample gets (default 300); ``batch_size`` caps the
        fields synthesised together (memory). maxent: ``steps`` = moment-matching updates (default
        200) with ``n_chains`` chains, ``steps_per_iteration`` MALA steps between updates and
        ``learning_rate``; ``sample_steps`` = MALA steps per sampling run (half of them warm-up);
        ``selection="best"`` keeps θ from the chunk of 10 updates with the lowest moment residual and
        stops after ``patience`` chunks without a lower one (``"last"``: average the last quarter of
        all ``steps`` updates) — see :class:`~phigen.scattering.maxent.MaxEntConfig`;
        ``theta_prior`` = λ > 0 adds a Gaussian prior ``λ|θ|²/2`` on the multipliers (see
        :class:`~phigen.scattering.maxent.MaxEntConfig`); ``marginal_bins`` = B > 0 adds B pixel-PDF statistics (a smoothed CDF at the data's quantiles,
        :class:`~phigen.scattering.marginal.MarginalStatistics`) to Φ, in any mode (micro: with one map,
        each gets the unit scale of a statistic in [−1, 1]). canonical: micro's options plus ``beta``
        and ``sample_steps``. micro and canonical: ``shell_power=True`` appends log(P_b/P̄_b) per
        shell of the band (:class:`~phigen.scattering.shell_power.ShellPowerStatistics`);
        ``minkowski_thresholds=B`` the smooth V0, V1, V2 of the excursion sets at B thresholds
        (:class:`~phigen.scattering.morphology.MinkowskiStatistics`; one map: block-mean scales);
        ``peak_bins=B`` the smooth peak counts in B height bins
        (:class:`~phigen.scattering.peak_counts.PeakStatistics`; one map: Poisson scales);
        ``detail_power=True`` the log power of each db4 DWT detail channel over J levels
        (:class:`~phigen.scattering.detail_power.DetailPowerStatistics`; one map: √(2/n) scales);
        ``pooled_power=True`` targets the log of the fields' mean power in every log-power entry
        (log S2, shells, details) rather than the mean log power (:func:`pooled_power_target`).
        """
        cfg = config_from_options(ScatteringConfig, config, options, "fit scattering")
        J, L, mode, isotropic, strict_scales = cfg.J, cfg.L, cfg.mode, cfg.isotropic, cfg.strict_scales
        steps, sample_steps, n_chains, batch_size = cfg.steps, cfg.sample_steps, cfg.n_chains, cfg.batch_size
        steps_per_iteration, learning_rate, selection = cfg.steps_per_iteration, cfg.learning_rate, cfg.selection
        patience, marginal_bins, theta_prior = cfg.patience, cfg.marginal_bins, cfg.theta_prior
        x = np.asarray(as_fields(fields, name="training fields"))
        shape = tuple(x.shape[1:])
        if not float(np.std(x)) > 0:
            raise InputError("the training fields are constant: there are no statistics to match")
        J = default_J(shape) if J is None else check_int_at_least(J, "J", 1)
        L = check_int_at_least(L, "L", 1)
        if min(shape) < 2 ** J:
            raise InputError(f"training fields of shape {shape} are smaller than 2^J = {2 ** J} (J = {J}); "
                             f"use J <= {int(math.log2(min(shape)))}")
        if batch_size is not None:
            batch_size = check_int_at_least(batch_size, "batch_size", 1)
        orientation_power = bool(cfg.orientation_power)
        base = _statistics(shape, J, L, isotropic, None, strict_scales, orientation_power)
        reference_s2 = base.power(x) if mode in ("micro", "canonical") else None
        stats = base if reference_s2 is None else _statistics(shape, J, L, isotropic, reference_s2, strict_scales,
                                                              orientation_power)
        common = dict(shape=shape, J=J, L=L, isotropic=isotropic, reference_s2=reference_s2,
                      strict_scales=strict_scales, orientation_power=orientation_power, mean=float(x.mean()),
                      std=float(x.std()))
        if sample_steps is None:
            sample_steps = DEFAULT_SAMPLE_STEPS.get(mode, DEFAULT_SAMPLE_STEPS["maxent"])
        if mode in ("micro", "canonical"):
            steps = 300 if steps is None else check_int_at_least(steps, "steps", 0)
            extra = {}
            if mode == "canonical":
                extra = {"beta": check_beta(DEFAULT_BETA if cfg.beta is None else cfg.beta),
                         "sample_steps": check_int_at_least(sample_steps, "sample_steps", 30)}
            power = band_power(x)
            singles = [stats.single_map_scale(float(x.std()))]
            marginal = shells = minkowski = None
            if check_int_at_least(marginal_bins, "marginal_bins", 0):
                marginal = MarginalStatistics.from_fields(x, marginal_bins)
                # each φ_b is a smoothed CDF in [−1, 1]: with one map, the uniform unit scale
                singles.append(np.ones(marginal.n_stats, np.float32))
                extra["marginal"] = marginal
            if cfg.shell_power:
                shells = ShellPowerStatistics.from_power(power.astype(np.float32), shape)
                singles.append(shells.single_map_scale())
                extra["shell_power"] = True
            if check_int_at_least(cfg.minkowski_thresholds, "minkowski_thresholds", 0):
                minkowski = MinkowskiStatistics.from_fields(x, cfg.minkowski_thresholds)
                singles.append(minkowski.single_map_scale(x[:8]))
                extra["minkowski"] = minkowski
            peaks = None
            if check_int_at_least(cfg.peak_bins, "peak_bins", 0):
                peaks = PeakStatistics.from_fields(x, cfg.peak_bins)
                singles.append(peaks.single_map_scale(x))
                extra["peaks"] = peaks
            details = None
            if cfg.detail_power:
                details = DetailPowerStatistics.from_fields(x, J)
                singles.append(details.single_map_scale(shape))
                extra["details"] = details
            stats = _assemble(stats, marginal, shells, minkowski, peaks, details)
            single = np.concatenate(singles)
            rows = _rows(stats, x)
            spread = has_spread(rows, single)
            target, scale = statistics_scales(rows, single=single)
            if cfg.pooled_power:
                target = pooled_power_target(rows, target, log_power_mask(stats))
                extra["pooled_power"] = True
            own = np.mean(((rows - target) / scale) ** 2, axis=1)  # what a training field scores under ℓ
            training = {"n_stats": int(target.shape[0]), "data_loss_median": float(np.median(own)),
                        "data_loss_mean": float(np.mean(own)), "synthesis_batch_size": batch_size,
                        "scales": "spread across fields" if spread else "single map (uniform, P00-normalised)",
                        "single_map": not spread,
                        "band_fraction": float(np.mean(power > 0))}
            return cls(mode=mode, target=target, scale=scale, steps=steps, training=training,
                       start_power=power.astype(np.float32), **extra, **common)
        steps = 200 if steps is None else check_int_at_least(steps, "steps", 1)
        sample_steps = check_int_at_least(sample_steps, "sample_steps", 40)
        marginal = None
        if check_int_at_least(marginal_bins, "marginal_bins", 0):
            marginal = MarginalStatistics.from_fields(x, marginal_bins)
            stats = _assemble(stats, marginal)
        config = MaxEntConfig(iterations=steps, n_chains=n_chains, steps_per_iteration=steps_per_iteration,
                              learning_rate=learning_rate, selection=selection, patience=patience,
                              theta_prior=theta_prior, progress=progress)
        params, history = fit_maxent(key, stats, x, config)
        first, last = history.selected
        training = {"n_stats": int(params.target.shape[0]), "moment_residual_initial": history.initial_residual,
                    "moment_residual_final": history.selected_residual, "moment_residual_floor": 1.0 / n_chains,
                    "moment_residual_last": float(np.mean(history.residual[-max(1, len(history.residual) // 10):])),
                    "moment_residual_history": history.residual.tolist(),
                    "updates_run": int(len(history.residual)), "selected_updates": [int(first), int(last)],
                    "acceptance_final": float(np.mean(history.acceptance[first:last] if last > first
                                                      else history.acceptance[-1:])),
                    "fit_loop_seconds": history.seconds, "maxent_config": {
                        "iterations": steps, "n_chains": n_chains, "steps_per_iteration": steps_per_iteration,
                        "learning_rate": learning_rate, "selection": selection, "patience": patience,
                        "marginal_bins": int(marginal_bins), "theta_prior": float(theta_prior)}}
        common.update(mean=params.mean)
        return cls(mode=mode, target=params.target, scale=params.scale, steps=steps, maxent=params,
                   sample_steps=sample_steps, training=training, marginal=marginal, **common)

    def synthesize(self, n: int, *, key, steps: int | None = None, batch_size: int | None = None,
                   progress: bool | None = False, precondition: bool = True, memory_size: int | None = None,
                   start: str = "spectrum"):
        """micro (and canonical, whose chains start there): ``n`` fields with their final losses, as a :class:`~phigen.scattering.synthesis.SynthesisResult`.

        ``precondition``: start L-BFGS's inverse Hessian from the data's band-wise wavelet power
        (:meth:`~phigen.scattering.ScatteringSpectra.preconditioner`) rather than the identity;
        ``memory_size``: curvature pairs kept (default: :class:`SynthesisConfig`'s);
        ``start``: ``"spectrum"`` (a random-phase field with the data's power per mode, synthesis
        restricted to the data's band, the grid corners |k| > π kept at that start) or ``"white"``
        (white noise with the data's mean and std over the whole Fourier plane: earlier versions'
        start, kept for comparison)."""
        if start not in ("spectrum", "white"):
            raise ParameterError(f"start must be 'spectrum' or 'white'; got {start!r}")
        if self.mode == "maxent":
            raise ParameterError("synthesize() is the microcanonical sampler; this model is 'maxent' (use sample)")
        if self._loss is None:
            self._loss = statistics_loss(self.statistics, self.target, self.scale)
        bs = batch_size if batch_size is not None else self.training.get("synthesis_batch_size")
        extra = {} if memory_size is None else {"memory_size": memory_size}
        config = SynthesisConfig(steps=self.steps if steps is None else steps, batch_size=bs, progress=progress,
                                 **extra)
        pre = self.spectra.preconditioner() if precondition and self.reference_s2 is not None else None
        power, free = None, None
        if start == "spectrum" and self.start_power is not None:
            # the grid corners keep the data's power per mode (random phases): the finest wavelet only
            # reaches them with its tail, and S2(j=0) fixes a ψ̂²-weighted sum over 1.5 < |k| < 4.4,
            # not how power is shared inside it (L-BFGS moved it by e^0.6 there); see docs/scattering.md
            power, free = self.start_power, ~outside_nyquist_circle(self._shape)
        # one map (or copies): its own moduli, phase-randomised; N distinct maps: a Gaussian sample of
        # their mean spectrum (exact moduli would give every sample the same |mean|, e.g. |M| of φ⁴)
        exact = bool(self.training.get("single_map", False))
        result = synthesize(key, self._loss, n, self._shape, mean=self.mean, std=self.std, config=config,
                            preconditioner=pre, start_power=power, free=free, exact_power=exact)
        self.last_synthesis = result
        return result

    def sample(self, n: int, *, key, steps: int | None = None, batch_size: int | None = None,
               kernel: str | None = None, progress: bool | None = False):
        """``n`` new fields ``(n, H, W)``. micro: ``steps`` L-BFGS iterations (default: the fitted
        ``steps``), final losses in ``self.last_synthesis.loss``. maxent: ``steps`` MALA (or
        ``kernel="hmc"``) steps from the Gaussian reference, half of them adapting the step size.
        canonical: ``steps`` HMC (or ``kernel="mala"``) iterations (default: the fitted ``sample_steps``),
        two thirds of them adapting the step size, from the microcanonical syntheses (the fitted
        L-BFGS ``steps``); the chains' step size and acceptance land in ``self.last_chains``."""
        n = check_int_at_least(n, "n", 1)
        if self.mode == "micro":
            if kernel is not None:
                raise ParameterError("kernel applies to modes 'maxent' and 'canonical' only")
            return self.synthesize(n, key=key, steps=steps, batch_size=batch_size, progress=progress).fields
        if self.mode == "canonical":
            return self._sample_canonical(n, key=key, steps=steps, batch_size=batch_size, kernel=kernel,
                                          progress=progress)
        if self._energy is None:
            self._energy = maxent_energy(self.statistics, self.maxent)
        steps = self.sample_steps if steps is None else steps
        return np.asarray(sample_maxent(key, self.statistics, self.maxent, n, steps=steps, kernel=kernel or "mala",
                                        progress=progress, energy=self._energy))

    def _sample_canonical(self, n, *, key, steps, batch_size, kernel, progress):
        steps = check_int_at_least(self.sample_steps if steps is None else steps, "steps", 30)
        amp = reference_amplitude(self.start_power)
        if self._energy is None:
            self._energy = canonical_energy(self.statistics, self.target, self.scale, self.beta, self.mean, amp)
        k_start, k_latent, k_run = jax.random.split(key, 3)
        x0 = self.synthesize(n, key=k_start, batch_size=batch_size, progress=progress).fields
        z0 = field_to_latent(k_latent, x0, self.mean, amp)
        z, info = sample_canonical(k_run, self._energy, z0, steps=steps, kernel=kernel or "hmc", beta=self.beta,
                                   progress=progress)
        self.last_chains = info
        return np.asarray(latent_to_field(z, self.mean, jnp.asarray(amp)))

    def moment_residual(self, fields) -> float:
        """mean_i ((⟨Φ_i⟩_fields − Φ̄_i)/σ_i)² of an ensemble (≈ 1/N for N fields like the data)."""
        return moment_residual(self.statistics, fields, self.target, self.scale)

    # -- files -----------------------------------------------------------------------------------
    def save(self, path):
        config = {"mode": self.mode, "shape": list(self._shape), "J": self.J, "L": self.L,
                  "isotropic": self.isotropic, "strict_scales": self.strict_scales,
                  "orientation_power": self.orientation_power, "mean": self.mean, "std": self.std, "steps": self.steps,
                  "sample_steps": self.sample_steps, "n_stats": self.n_stats}
        arrays = {"target": self.target, "scale": self.scale}
        if self.reference_s2 is not None:
            arrays["reference_s2"] = self.reference_s2
        if self.start_power is not None:
            arrays["start_power"] = self.start_power
        if self.beta is not None:
            config["beta"] = self.beta
        if self.shell_power:
            config["shell_power"] = True
        if self.maxent is not None:
            config["step_size"] = float(self.maxent.step_size)
            arrays.update(theta=self.maxent.theta, amplitude=self.maxent.amplitude)
        if self.marginal is not None:
            arrays.update(marginal_centres=np.asarray(self.marginal.centres),
                          marginal_widths=np.asarray(self.marginal.widths))
        if self.minkowski is not None:
            arrays.update(minkowski_levels=np.asarray(self.minkowski.levels),
                          minkowski_widths=np.asarray(self.minkowski.widths))
        if self.peaks is not None:
            arrays["peak_edges"] = np.asarray(self.peaks.edges)
            config["peaks"] = {"mean": self.peaks.mean, "std": self.peaks.std, "tau": self.peaks.tau}
        if self.pooled_power:
            config["pooled_power"] = True
        if self.details is not None:
            arrays["detail_power_reference"] = np.asarray(self.details.reference)
            config["detail_power"] = {"levels": self.details.levels, "wavelet": self.details.wavelet}
        return write_model_file(path, self.kind, config=config, arrays=arrays, training=self.training)

    @classmethod
    def load(cls, path):
        from ..errors import ModelFileError

        f = read_model_file(path, cls.kind)
        c, a = f.config, f.arrays
        try:
            maxent = None
            if c["mode"] == "maxent":
                maxent = MaxEntParams(np.asarray(a["theta"], np.float32), np.asarray(a["target"], np.float32),
                                      np.asarray(a["scale"], np.float32), float(c["mean"]),
                                      np.asarray(a["amplitude"], np.float32), float(c["step_size"]))
            model = cls(mode=c["mode"], shape=c["shape"], J=c["J"], L=c["L"], isotropic=c["isotropic"],
                        strict_scales=bool(c.get("strict_scales", False)),
                        orientation_power=bool(c.get("orientation_power", False)),
                        reference_s2=a.get("reference_s2"), target=a["target"], scale=a["scale"], mean=c["mean"],
                        std=c["std"], steps=c["steps"], sample_steps=c["sample_steps"], maxent=maxent,
                        training=f.training, start_power=a.get("start_power"), beta=c.get("beta"),
                        shell_power=bool(c.get("shell_power", False)), pooled_power=bool(c.get("pooled_power", False)),
                        marginal=None if "marginal_centres" not in a else MarginalStatistics(
                            jnp.asarray(a["marginal_centres"], jnp.float32),
                            jnp.asarray(a["marginal_widths"], jnp.float32)),
                        minkowski=None if "minkowski_levels" not in a else MinkowskiStatistics(
                            jnp.asarray(a["minkowski_levels"], jnp.float32),
                            jnp.asarray(a["minkowski_widths"], jnp.float32)),
                        peaks=None if "peak_edges" not in a else PeakStatistics(
                            jnp.asarray(a["peak_edges"], jnp.float32), float(c["peaks"]["mean"]),
                            float(c["peaks"]["std"]), float(c["peaks"]["tau"])),
                        details=None if "detail_power_reference" not in a else DetailPowerStatistics(
                            jnp.asarray(a["detail_power_reference"], jnp.float32),
                            int(c["detail_power"]["levels"]), str(c["detail_power"]["wavelet"])))
        except KeyError as exc:
            raise ModelFileError(f"scattering model file lacks {exc}", path=path) from None
        if model.statistics.n_stats != model.n_stats:
            raise ModelFileError(f"stored statistics ({model.n_stats}) do not match this phigen's scattering "
                                 f"spectra for J={model.J}, L={model.L} ({model.statistics.n_stats})", path=path)
        return model
