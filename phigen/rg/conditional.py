"""Conditional WC-RG (registered kind ``"wcrg-conditional"``): one Gibbs energy per scale whose
parameters are smooth functions of a condition c (κ of φ⁴, (Ω_m, σ₈) of the cosmic web), docs/rg.md.

    θ_j(c) = Σ_b g_b(c̃) θ_{j,b},   c̃ = (c − mean) / std,   g = the monomials of c̃ up to ``degree``

Score matching stays linear in the parameters, so its solution is still closed form: with the
per-condition sums ``M_k = Σ ∇Φ∇Φᵀ``, ``b_k = Σ ΔΦ`` over the n_k fields at condition c_k,

    M = Σ_k (g(c_k) g(c_k)ᵀ) ⊗ M_k,   b = Σ_k g(c_k) ⊗ b_k,   θ = (M + ridge)⁻¹ b,

solved with the same Jacobi-preconditioned ridge as WC-RG. Sampling at any c (seen in training or
not) builds the WC-RG energy θ(c) and samples it coarse to fine (:class:`~phigen.rg.wcrg.WCRGModel`).
The wavelet normalisation (the means and standard deviations per level and channel that the energies
read their variables in) is shared by all conditions by default; ``normalisation="per-condition"``
makes it a function of c too — each statistic's per-condition value (log for the standard deviations)
regressed on the same basis g — so the amplitude per scale follows c exactly where it is smooth in c
and θ(c) only carries what normalising leaves. Optional: WC-RG's magnetisation terms
(``magnetisation_passes``) and spectral calibration (``spectral_passes``) across conditions.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, fields as dataclass_fields

import jax
import numpy as np

from .._validation import as_fields, check_int_at_least, check_positive
from ..errors import InputError, ModelFileError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from ..models._conditions import warn_if_extrapolating
from ._shifts import level_shifts
from .factor import WaveletFactorisation
from .gibbs import sample_level, score_matching_system, solve_score_matching
from .wcrg import (_MAGNETISATION_MIN_NM2, WCRGModel, _magnetisation_statistics, _shifted_level_data, _white_noise,
                   structure_from_file, structure_record)

__all__ = ["ConditionalWCRGModel", "ConditionalWCRGConfig", "condition_basis"]


_MAGNETISATION_MODES = ("basis", "per-condition", "per-condition-width")


@dataclass(frozen=True)
class ConditionalWCRGConfig:
    """Options of :meth:`ConditionalWCRGModel.fit`: the energies of :class:`~phigen.rg.wcrg.WCRGConfig`
    (same names and defaults), ``degree``, the polynomial degree of θ(c) in the standardised
    condition (2: quadratic), and ``magnetisation_passes``: Newton passes of WC-RG's magnetisation
    terms n·(a M² + b M⁴) of the coarsest field, their basis coefficients (a, b)(c) = Σ_b g_b(c)(a_b, b_b)
    moment-matched jointly across the training conditions, with ``magnetisation_chains`` fresh
    coarsest chains per condition and pass (0: no terms; docs/rg.md has the measurements).
    ``magnetisation_mode="per-condition"`` (one condition only) instead matches the single term n·a·M²
    at each training condition (a 1-D Newton iteration on E[nM²], a averaged over the later passes) and
    interpolates a(c) between the training conditions by a monotone cubic (PCHIP), constant beyond them.
    ``magnetisation_mode="per-condition-width"`` adds a Gaussian bump n·A·exp(−(|M| − m₀)²/2s²) at
    the data's own m₀ = E|M| with s = 1.5 × its std of |M| (per condition), and matches (a, A) on
    E[nM²] and E[n·bump] (a 2-D Newton iteration): the bump sets the width of the law of |M| at its
    peak, which a M² alone leaves to the local features (half the truth's χ in the ordered phase,
    docs/rg.md); (a, A, m₀, s)(c) are interpolated the same way, so the training conditions must be
    close relative to the width of the transition: measured right at held-out κ at L = 32 on the
    11-κ grid and, at L = 64, with κ_c from the Binder crossing right only once the grid had two more
    κ beside κ_c (docs/rg.md: on the 11-κ grid the bump interpolated from a half-normal knot to a
    peaked one gave U₄ < 0 between them).
    ``spectral_passes``: passes of WC-RG's spectral calibration (moment matching of every conditional
    level's same-channel couplings to the detail spectra): at each training condition one Newton step
    with ``spectral_chains`` chains, the steps projected on the condition basis by least squares
    (0: off). ``normalisation``: ``"shared"`` (one wavelet normalisation for all conditions) or
    ``"per-condition"`` (each condition's detail and coarse means and log standard deviations regressed
    on the condition basis: the normalisation at c, docs/rg.md)."""

    degree: int = 2
    spectral_passes: int = 0
    spectral_chains: int = 64
    magnetisation_passes: int = 0
    magnetisation_chains: int = 128
    magnetisation_mode: str = "basis"
    normalisation: str = "shared"
    J: int | None = None
    wavelet: str = "db4"
    k: int | tuple = 3
    k_coarse: int = 2
    n_bumps: int = 5
    bump_range: float = 3.0
    coarse_bumps: int = 0
    quartic: bool = True
    ridge: float = 1e-2
    coarse_ridge: float = 1e-2
    sign_symmetric: bool = False
    shifts: int = 16
    chunk: int = 16
    sample_steps: int = 500
    sample_adapt: int = 200
    coarse_sample_steps: int = 8000
    coarse_sample_adapt: int = 1000

    def __post_init__(self):
        check_int_at_least(self.degree, "degree", 0)
        if np.ndim(self.k) != 0:
            object.__setattr__(self, "k", tuple(int(v) for v in self.k))
        check_int_at_least(self.magnetisation_passes, "magnetisation_passes", 0)
        if self.magnetisation_mode not in _MAGNETISATION_MODES:
            raise ParameterError(f"magnetisation_mode must be one of {', '.join(map(repr, _MAGNETISATION_MODES))}; "
                                 f"got {self.magnetisation_mode!r}")
        if self.normalisation not in ("shared", "per-condition"):
            raise ParameterError(f"normalisation must be 'shared' or 'per-condition'; got {self.normalisation!r}")
        check_int_at_least(self.spectral_passes, "spectral_passes", 0)
        for name in ("shifts", "chunk", "magnetisation_chains", "spectral_chains"):
            check_int_at_least(getattr(self, name), name, 1)
        for name in ("bump_range", "ridge", "coarse_ridge"):
            check_positive(getattr(self, name), name)

    def wcrg_options(self) -> dict:
        """The WCRGConfig fields of this record (the level specs are built exactly as WC-RG's)."""
        from .wcrg import WCRGConfig

        names = {f.name for f in dataclass_fields(WCRGConfig)}
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name in names}


def condition_basis(c, mean, std, degree: int) -> np.ndarray:
    """``g(c̃)`` for conditions ``c`` ``(N, D)``: every monomial of c̃ = (c − mean)/std of total degree
    ≤ ``degree`` (1, c̃₁, …, c̃₁², c̃₁c̃₂, …), ``(N, B)`` float64."""
    z = (np.atleast_2d(np.asarray(c, np.float64)) - np.asarray(mean)) / np.asarray(std)
    d = z.shape[1]
    cols = [np.ones(len(z))]
    for total in range(1, int(degree) + 1):
        for combo in itertools.combinations_with_replacement(range(d), total):
            cols.append(np.prod(z[:, list(combo)], axis=1))
    return np.stack(cols, axis=1)


@register_model("wcrg-conditional")
class ConditionalWCRGModel:
    """WC-RG whose energies depend smoothly on a condition (module docstring)."""

    fit_config = ConditionalWCRGConfig

    def __init__(self, base: WCRGModel, theta_basis: tuple, condition_names, mean, std, degree: int,
                 training: dict | None = None, magnetisation_basis=None, magnetisation_knots=None,
                 normalisation_basis=None):
        self.base = base  # the factorisation, specs and sampling budget; its thetas are set per condition
        self.theta_basis = tuple(np.asarray(t, np.float32) for t in theta_basis)  # per level (B, P)
        self.condition_names = list(condition_names)
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self.degree = int(degree)
        self.training = training or {}
        n_b = self.theta_basis[0].shape[0] if self.theta_basis else 1
        # (B, 2): basis coefficients of the magnetisation terms (a, b)(c); zeros: no terms
        self.magnetisation_basis = (np.zeros((n_b, 2), np.float32) if magnetisation_basis is None
                                    else np.asarray(magnetisation_basis, np.float32))
        # or (magnetisation_mode="per-condition"): (K, 2) rows (c_k, a_k), a(c) interpolated between them;
        # ("per-condition-width"): (K, 5) rows (c_k, a_k, A_k, m0_k, s_k) of n·(a M² + A·bump(|M|; m0, s))
        self.magnetisation_knots = None if magnetisation_knots is None else np.asarray(magnetisation_knots, np.float64)
        # (B, 8J+2) (normalisation="per-condition"): basis coefficients of the factorisation's statistics
        # (detail means, log detail stds, coarse means, log coarse stds); None: base.factorisation everywhere
        self.normalisation_basis = None if normalisation_basis is None else np.asarray(normalisation_basis, np.float64)

    @property
    def n_params(self) -> int:
        used = self.magnetisation_basis.size if np.any(self.magnetisation_basis) else 0
        used += 0 if self.magnetisation_knots is None else self.magnetisation_knots[:, 1:].size
        used += 0 if self.normalisation_basis is None else self.normalisation_basis.size
        return int(sum(t.size for t in self.theta_basis) + used)

    @property
    def field_shape(self):
        return self.base.field_shape

    # --- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, fields, *, key, progress=None, conditions=None, condition_names=None,
            config: ConditionalWCRGConfig | None = None, **options):
        """Fit on ``fields`` ``(N, H, W)`` at ``conditions`` ``(N,)`` or ``(N, D)`` (one row per field;
        fields sharing a row are one condition). ``config`` / ``options``: :class:`ConditionalWCRGConfig`."""
        cfg = config_from_options(ConditionalWCRGConfig, config, options, "fit wcrg-conditional")
        x = np.asarray(as_fields(fields, name="training fields"))
        if conditions is None:
            raise ParameterError("wcrg-conditional needs the conditions of the training fields "
                                 "(phigen fit ... --condition NAME[,NAME])")
        c = np.asarray(conditions, np.float64)
        c = c[:, None] if c.ndim == 1 else c
        if c.ndim != 2 or len(c) != len(x) or not np.all(np.isfinite(c)):
            raise InputError(f"conditions must be finite, one row per field ({len(x)}); got shape {np.shape(conditions)}")
        if cfg.magnetisation_passes and cfg.magnetisation_mode != "basis" and c.shape[1] != 1:
            raise ParameterError(f"magnetisation_mode={cfg.magnetisation_mode!r} interpolates along one condition; "
                                 f"got {c.shape[1]} (use magnetisation_mode='basis')")
        values, index = np.unique(c, axis=0, return_inverse=True)
        index = index.reshape(-1)
        n_basis = condition_basis(values[:1], 0.0, 1.0, cfg.degree).shape[1]
        if len(values) < n_basis:
            raise ParameterError(f"{len(values)} distinct conditions cannot determine a degree-{cfg.degree} "
                                 f"basis of {n_basis} functions; lower degree")
        mean, std = c.mean(axis=0), c.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        g = condition_basis(values, mean, std, cfg.degree)  # (K, B)
        t_start = time.perf_counter()
        if cfg.sign_symmetric:  # every condition keeps its fields and their negatives
            x, index = np.concatenate([x, -x]), np.concatenate([index, index])
        fact = WaveletFactorisation.fit(x, wavelet=cfg.wavelet, J=cfg.J)
        specs = WCRGModel._level_specs(_as_wcrg_config(cfg), fact, x.shape[-2:], x)
        sampling = {"steps": cfg.sample_steps, "adapt": cfg.sample_adapt, "coarse_steps": cfg.coarse_sample_steps,
                    "coarse_adapt": cfg.coarse_sample_adapt, "precondition": False}
        base = WCRGModel(fact, tuple(specs), (), x.shape[1:], sampling)
        norm_basis = (_fit_normalisation_basis(x, index, g, fact) if cfg.normalisation == "per-condition" else None)
        # each condition's fields are read in the normalisation at its c (the basis's, not its own raw one)
        level_models = [base if norm_basis is None else
                        WCRGModel(_factorisation_from_row(fact, g[k] @ norm_basis), base.specs, (), x.shape[1:])
                        for k in range(len(values))]
        from tqdm.auto import tqdm

        basis, levels = [], []
        with tqdm(total=fact.J + 1, desc="fit wcrg-conditional", unit="level",
                  disable=None if progress is None else not progress) as bar:
            for lvl in range(1, fact.J + 2):
                theta, rec = _fit_conditional_level(level_models, lvl, x, index, g, cfg)
                basis.append(theta)
                levels.append(rec)
                bar.update(1)
        names = list(condition_names) if condition_names is not None else [f"c{i}" for i in range(c.shape[1])]
        model = cls(base, tuple(basis), names, mean, std, cfg.degree, normalisation_basis=norm_basis)
        mag_record, spectral = None, None
        if cfg.spectral_passes:
            spectral = model._calibrate_spectra(x, index, values, g, cfg, key)
        if cfg.magnetisation_passes and cfg.magnetisation_mode != "basis":
            mag_record = model._match_magnetisation_per_condition(x, index, values, cfg, key)
        elif cfg.magnetisation_passes:
            mag_record = model._match_magnetisation(x, index, values, g, cfg, key)
        training = {"levels": levels, "n_conditions": int(len(values)), "conditions": values.tolist(),
                    "magnetisation": mag_record, "spectral_calibration": spectral, "normalisation": cfg.normalisation,
                    "degree": cfg.degree, "ridge": cfg.ridge, "coarse_ridge": cfg.coarse_ridge,
                    "sign_symmetric": bool(cfg.sign_symmetric), "shifts": int(cfg.shifts),
                    "fit_seconds_solve": time.perf_counter() - t_start}
        model.training = training
        return model

    def _calibrate_spectra(self, x, index, values, g, cfg: ConditionalWCRGConfig, key) -> dict:
        """WC-RG's spectral calibration on the condition basis, ``spectral_passes`` times: at every training
        condition one Newton step of each conditional level's same-channel couplings (WC-RG's, on that
        condition's fields and the model's own coarse fields there), then the steps Δθ(c_k) projected on
        the basis by least squares and added to θ_b (entries the calibration leaves alone do not move).
        The fixed point matches the spectra through the basis, on average over the conditions, instead
        of calibrating each condition to its own few fields and projecting the results."""
        from .wcrg import _calibrate_spectra

        errors = [{} for _ in values]
        for p in range(cfg.spectral_passes):
            steps = [[] for _ in self.theta_basis]
            for k, value in enumerate(values):
                m = self.at(value)
                before = [np.asarray(t, np.float64) for t in m.thetas]
                rec = _calibrate_spectra(m, x[index == k], n_iter=1, n_fields=cfg.spectral_chains,
                                         key=jax.random.fold_in(key, 4099 + 1000 * p + k))
                for j, t in enumerate(m.thetas):
                    steps[j].append(np.asarray(t, np.float64) - before[j])
                for lvl, r in rec.items():
                    if isinstance(lvl, int):  # the spectrum error before this pass's step (and after the last)
                        e = r["spectrum_rms_log_ratio_per_pass"]
                        errors[k].setdefault(lvl, []).extend(e if p == cfg.spectral_passes - 1 else e[:1])
            self.theta_basis = tuple((t + np.linalg.lstsq(g, np.stack(d), rcond=None)[0]).astype(np.float32)
                                     for t, d in zip(self.theta_basis, steps))
        return {"passes": cfg.spectral_passes, "chains": cfg.spectral_chains, "projected": "steps",
                "spectrum_rms_log_ratio_per_condition": errors}

    def _coarsest_chains_setup(self, x, index, values, cfg: ConditionalWCRGConfig):
        """What both magnetisation matchers need: the data's (nM², nM⁴) per condition (in the
        normalisation at that condition), and the coarsest level's (spec, constants, chain shape, steps,
        adaptation steps); ``(skip record, None)`` when the training fields' mean does not fluctuate (the
        terms then have nothing to describe)."""
        f, base = self.base.factorisation, self.base
        s_data = []
        for k, value in enumerate(values):
            fk = self.factorisation_at(value)
            s_data.append(_magnetisation_statistics(fk.normalise_coarse(fk.coarse(x[index == k], f.J), f.J)[:, None]))
        if float(np.mean(np.concatenate(s_data)[:, 0])) < _MAGNETISATION_MIN_NM2:
            return {"skipped": f"the training fields' mean does not fluctuate (E[nM²] < {_MAGNETISATION_MIN_NM2})"}, None
        shape = (cfg.magnetisation_chains, 1) + tuple(f.level_shape(x.shape[-2:], f.J))
        steps = int(base.sampling["coarse_steps"])
        adapt = min(int(base.sampling["coarse_adapt"]), steps // 4)
        return s_data, (base.specs[-1], base.level_constants(f.J + 1), shape, steps, adapt)

    def _match_magnetisation(self, x, index, values, g, cfg: ConditionalWCRGConfig, key) -> dict:
        """Joint moment matching of the magnetisation-term basis: the exponential family's Newton step
        on E[s ⊗ g(c)], s = (nM², nM⁴) of the normalised coarsest field, with the Fisher matrix
        Σ_k g_k g_kᵀ ⊗ Cov_k(s) (Cov: the mean of the model's and the data's, as WC-RG). The chains
        start from noise at every pass, so the fit sees what sampling from scratch gives (persistent
        chains stayed ordered where fresh ones did not: a metastable disordered state, docs/rg.md)."""
        s_data, coarse = self._coarsest_chains_setup(x, index, values, cfg)
        if coarse is None:
            return s_data
        spec, consts, shape, steps, adapt = coarse
        n_b = g.shape[1]
        phi = np.zeros((n_b, 2))
        history = []
        for it in range(cfg.magnetisation_passes + 1):
            e_model, e_data, fisher = np.zeros(2 * n_b), np.zeros(2 * n_b), np.zeros((2 * n_b, 2 * n_b))
            errors = []
            for k, value in enumerate(values):
                kk = jax.random.fold_in(key, 7919 + 1000 * it + k)
                y0 = _white_noise(jax.random.fold_in(kk, 1), shape)
                y, _ = sample_level(self.thetas_at(value)[-1], spec, consts, y0, key=kk, n_steps=steps, n_adapt=adapt,
                                    flip=True, magnetisation=(g[k] @ phi).astype(np.float32))
                sm, sd = _magnetisation_statistics(y), s_data[k]
                errors.append((sm.mean(0) / sd.mean(0) - 1.0).tolist())
                e_model += np.kron(g[k], sm.mean(0))
                e_data += np.kron(g[k], sd.mean(0))
                fisher += np.kron(np.outer(g[k], g[k]), 0.5 * (np.cov(sm.T) + np.cov(sd.T)))
            history.append(errors)
            if it < cfg.magnetisation_passes:
                # the terms add (a, b)(c)·s to the energy: dE[s ⊗ g]/dφ = −Fisher
                step = np.linalg.solve(fisher + 1e-9 * np.trace(fisher) * np.eye(2 * n_b), e_model - e_data)
                phi = phi + step.reshape(n_b, 2)
                self.magnetisation_basis = phi.astype(np.float32)
        return {"passes": cfg.magnetisation_passes, "moment_rel_error_per_pass": history,
                "basis": self.magnetisation_basis.tolist()}

    def _match_magnetisation_per_condition(self, x, index, values, cfg: ConditionalWCRGConfig, key) -> dict:
        """The per-condition terms at every training condition: n·a·M² on E[nM²]
        (``magnetisation_mode="per-condition"``), or n·(a M² + A·bump) on (E[nM²], E[n·bump]),
        bump = exp(−(|M| − m₀)²/2s²) at the data's m₀ = E|M|, s = 1.5·std|M| (``"per-condition-width"``).
        The exponential family's Newton step θ += Cov⁻¹(E_model − E_data), Cov the mean of the model's
        and the data's, fresh coarsest chains from noise at every pass, θ averaged over the second half
        of the passes (E[nM²] is well determined in both phases, unlike E[nM⁴] jointly with it:
        docs/rg.md). The knots (c_k, θ_k) define θ(c) by monotone cubic interpolation
        (:meth:`magnetisation_at`)."""
        s_all, coarse = self._coarsest_chains_setup(x, index, values, cfg)
        if coarse is None:
            return s_all
        spec, consts, shape, steps, adapt = coarse
        n = shape[-2] * shape[-1]
        width = cfg.magnetisation_mode == "per-condition-width"
        knots, history = [], []
        for k, value in enumerate(values):
            theta_c = self.thetas_at(value)[-1]
            m_data = np.sqrt(s_all[k][:, 0] / n)  # |M| of every training field at this condition
            bump = (float(m_data.mean()), max(_BUMP_WIDTH * float(m_data.std()), 1e-6)) if width else None
            s_data = _per_condition_statistics(m_data, n, bump)
            t, iterates, errors = np.zeros(s_data.shape[1]), [], []
            for it in range(cfg.magnetisation_passes):
                kk = jax.random.fold_in(key, 7919 + 1000 * it + k)
                coeffs = np.array([t[0], 0.0, t[1], *bump] if width else [t[0], 0.0], np.float32)
                y, _ = sample_level(theta_c, spec, consts, _white_noise(jax.random.fold_in(kk, 1), shape), key=kk,
                                    n_steps=steps, n_adapt=adapt, flip=True, magnetisation=coeffs)
                s_model = _per_condition_statistics(np.asarray(y, np.float64)[:, 0].mean(axis=(-2, -1)), n, bump)
                errors.append((s_model.mean(0) / s_data.mean(0) - 1.0).tolist())
                cov = np.atleast_2d(0.5 * (np.cov(s_model.T) + np.cov(s_data.T)))
                cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))  # where the two statistics nearly coincide
                t = t + np.linalg.solve(cov, s_model.mean(0) - s_data.mean(0))
                iterates.append(t.copy())
            knots.append((float(value[0]), *np.mean(iterates[len(iterates) // 2:], axis=0).tolist(), *(bump or ())))
            history.append(errors)
        self.magnetisation_knots = np.asarray(knots, np.float64)
        return {"mode": cfg.magnetisation_mode, "passes": cfg.magnetisation_passes,
                "moment_rel_error_per_pass": history, "knots": self.magnetisation_knots.tolist()}

    # --- sampling --------------------------------------------------------------------------------
    def _condition_row(self, condition) -> np.ndarray:
        """``condition`` (a number, or one value per condition name) as a checked ``(D,)`` row."""
        c = np.asarray(condition, np.float64).reshape(-1)
        if c.size != len(self.condition_names) or not np.all(np.isfinite(c)):
            raise ParameterError(f"condition must be {len(self.condition_names)} finite number(s) "
                                 f"({', '.join(self.condition_names)}); got {condition!r}")
        return c

    def _basis_at(self, condition) -> np.ndarray:
        """g(c̃) ``(B,)`` at ``condition`` (a number, or one value per condition name)."""
        return condition_basis(self._condition_row(condition)[None], self.mean, self.std, self.degree)[0]

    def factorisation_at(self, condition) -> WaveletFactorisation:
        """The wavelet normalisation at ``condition``: the shared one, or (``normalisation="per-condition"``)
        the means and exp(log stds) of the basis at c."""
        if self.normalisation_basis is None:
            return self.base.factorisation
        return _factorisation_from_row(self.base.factorisation, self._basis_at(condition) @ self.normalisation_basis)

    def thetas_at(self, condition) -> tuple:
        """θ_j(c) of every level at ``condition``."""
        g = self._basis_at(condition)
        return tuple((g @ t.astype(np.float64)).astype(np.float32) for t in self.theta_basis)

    def magnetisation_at(self, condition) -> np.ndarray:
        """(a, b) — or (a, b, A, m₀, s) with the bump (:func:`~phigen.rg.gibbs.with_magnetisation_terms`)
        — of the magnetisation terms at ``condition`` (zeros without them)."""
        if self.magnetisation_knots is not None:
            c, t = self.magnetisation_knots[:, 0], self.magnetisation_knots[:, 1:]
            q = float(np.clip(self._condition_row(condition)[0], c[0], c[-1]))
            if len(c) == 1:
                at = t[0]
            else:
                from scipy.interpolate import PchipInterpolator

                at = PchipInterpolator(c, t, axis=0)(q)
            return np.array([at[0], 0.0, *at[1:]], np.float32)
        return (self._basis_at(condition) @ self.magnetisation_basis).astype(np.float32)

    def at(self, condition) -> WCRGModel:
        """The WC-RG model of one condition (sample it, save it, judge it like any WC-RG model). Warns
        when ``condition`` lies outside the training conditions' range (the polynomials extrapolate)."""
        b = self.base
        trained = np.asarray(self.training.get("conditions") or [], np.float64)
        if trained.ndim == 2 and trained.shape[1] == len(self.condition_names):
            warn_if_extrapolating("wcrg-conditional", self.condition_names, self._condition_row(condition),
                                  trained.min(axis=0), trained.max(axis=0), what="θ(c)")
        return WCRGModel(self.factorisation_at(condition), b.specs, self.thetas_at(condition), b.field_shape, dict(b.sampling),
                         {"condition": dict(zip(self.condition_names, np.atleast_1d(condition).tolist()))},
                         magnetisation=self.magnetisation_at(condition))

    def sample(self, n: int, *, key, condition=None, shape=None, steps: int | None = None,
               coarse_steps: int | None = None, progress=None, from_coarse=None):
        """``n`` fields ``(n, H, W)`` at ``condition`` (required), drawn coarse to fine (from the coarse
        fields ``from_coarse`` if given: super-resolution, :meth:`WCRGModel.sample`)."""
        if condition is None:
            raise ParameterError(f"wcrg-conditional samples at a condition: pass condition= (phigen sample "
                                 f"--condition {','.join(n + '=VALUE' for n in self.condition_names)})")
        return self.at(condition).sample(n, key=key, shape=shape, steps=steps, coarse_steps=coarse_steps,
                                         progress=progress, from_coarse=from_coarse)

    # --- files -----------------------------------------------------------------------------------
    def save(self, path):
        config, arrays = structure_record(self.base.factorisation, self.base.specs)
        arrays.update({f"theta_basis/{i}": t for i, t in enumerate(self.theta_basis)})
        arrays.update(condition_mean=self.mean, condition_std=self.std, magnetisation_basis=self.magnetisation_basis)
        if self.magnetisation_knots is not None:
            arrays["magnetisation_knots"] = self.magnetisation_knots
        if self.normalisation_basis is not None:
            arrays["normalisation_basis"] = self.normalisation_basis
        return write_model_file(path, self.kind, config={**config, "shape": list(self.base.field_shape),
                                                         "sampling": self.base.sampling, "degree": self.degree,
                                                         "condition_names": self.condition_names},
                                arrays=arrays, training=self.training)

    @classmethod
    def load(cls, path):
        mf = read_model_file(path, cls.kind)
        try:
            c = mf.config
            fact, specs = structure_from_file(mf)
            basis = tuple(mf.arrays[f"theta_basis/{i}"] for i in range(len(specs)))
            n_b = condition_basis(np.zeros((1, len(c["condition_names"]))), 0.0, 1.0, int(c["degree"])).shape[1]
            if any(t.shape != (n_b, s.n_features) for t, s in zip(basis, specs)):
                raise ValueError("parameter arrays do not match the level specifications")
            base = WCRGModel(fact, specs, (), c["shape"], c.get("sampling"))
            mag = mf.arrays.get("magnetisation_basis")
            if mag is not None and np.shape(mag) != (n_b, 2):
                raise ValueError("the magnetisation basis must be (basis size, 2)")
            knots = mf.arrays.get("magnetisation_knots")
            if knots is not None and (np.ndim(knots) != 2 or np.shape(knots)[1] not in (2, 5)
                                      or len(c["condition_names"]) != 1 or not np.all(np.isfinite(knots))
                                      or np.any(np.diff(np.asarray(knots)[:, 0]) <= 0)):
                raise ValueError("the magnetisation knots must be finite (condition, a) or (condition, a, A, m0, s) rows "
                                 "in increasing condition")
            norm = mf.arrays.get("normalisation_basis")
            if norm is not None and (np.shape(norm) != (n_b, 8 * fact.J + 2) or not np.all(np.isfinite(norm))):
                raise ValueError(f"the normalisation basis must be finite, (basis size {n_b}, 8J+2 = {8 * fact.J + 2})")
            return cls(base, basis, c["condition_names"], mf.arrays["condition_mean"], mf.arrays["condition_std"],
                       int(c["degree"]), mf.training, magnetisation_basis=mag, magnetisation_knots=knots,
                       normalisation_basis=norm)
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise ModelFileError(f"incomplete or inconsistent wcrg-conditional model file: {exc}", path=path) from None


def _as_wcrg_config(cfg: ConditionalWCRGConfig):
    from .wcrg import WCRGConfig

    return WCRGConfig(**cfg.wcrg_options(), calibrate=0, check_samples=0)


def _normalisation_row(f: WaveletFactorisation) -> np.ndarray:
    """A factorisation's statistics as one row ``(8J+2,)``: detail means, log detail stds (level-major,
    channel-minor), coarse means, log coarse stds (x_0 … x_J)."""
    return np.concatenate([f.detail_mean.ravel(), np.log(f.detail_std).ravel(), f.coarse_mean, np.log(f.coarse_std)])


def _factorisation_from_row(f: WaveletFactorisation, row) -> WaveletFactorisation:
    """Inverse of :func:`_normalisation_row` (wavelet and J from ``f``)."""
    J = f.J
    dm, lds, cm, lcs = np.split(np.asarray(row, np.float64), [3 * J, 6 * J, 7 * J + 1])
    return WaveletFactorisation(f.wavelet, J, dm.reshape(J, 3), np.exp(lds).reshape(J, 3), cm, np.exp(lcs))


def _fit_normalisation_basis(x, index, g, fact: WaveletFactorisation) -> np.ndarray:
    """``(B, 8J+2)``: least squares of every condition's own normalisation row on g(c_k) (the stds in log:
    relative errors weigh alike at every amplitude, and the std at any c is positive)."""
    counts = np.bincount(index, minlength=len(g))
    if counts.min() < 2:
        raise InputError(f"normalisation='per-condition' needs at least 2 fields per condition; "
                         f"condition {int(np.argmin(counts))} has {int(counts.min())}")
    rows = np.stack([_normalisation_row(WaveletFactorisation.fit(x[index == k], wavelet=fact.wavelet, J=fact.J))
                     for k in range(len(g))])
    return np.linalg.lstsq(g, rows, rcond=None)[0]


def _fit_conditional_level(models, lvl: int, x, index, g, cfg: ConditionalWCRGConfig):
    """θ basis ``(B, P)`` of level ``lvl`` by the assembled score-matching system (module docstring);
    ``models[k]``: the WC-RG structure whose normalisation condition k's fields are read in."""
    t0 = time.perf_counter()
    fact = models[0].factorisation
    spec = models[0].specs[lvl - 1]
    shifts = level_shifts(min(lvl, fact.J), cfg.shifts)
    n_b, p = g.shape[1], spec.n_features
    M = np.zeros((n_b * p, n_b * p))
    b = np.zeros(n_b * p)
    n_total = 0
    for k in range(len(g)):
        cond, y = _shifted_level_data(models[k].factorisation, x[index == k], lvl, shifts)
        Mk, bk, nk = score_matching_system(spec, models[k].level_constants(lvl), y, cond, chunk=cfg.chunk)
        gg = np.outer(g[k], g[k])
        M += np.kron(gg, np.asarray(Mk, np.float64))
        b += np.kron(g[k], np.asarray(bk, np.float64))
        n_total += nk
    sol = solve_score_matching(M, b, n_total, ridge=cfg.ridge if lvl <= fact.J else cfg.coarse_ridge)
    theta = np.asarray(sol.theta).reshape(n_b, p)
    rec = {"level": lvl, "kind": "conditional" if lvl <= fact.J else "coarse", "n_params": int(n_b * p),
           "k": spec.k, "condition_number": sol.condition_number,
           "preconditioned_condition_number": sol.preconditioned_condition_number,
           "fit_seconds": time.perf_counter() - t0}
    return theta, rec


_BUMP_WIDTH = 1.5  # the bump's s in units of the data's std of |M|: wider than the peak it flattens


def _per_condition_statistics(m, n: int, bump) -> np.ndarray:
    """What the per-condition terms match, per field of magnetisation ``m`` ``(N,)`` on ``n`` sites:
    ``(nM²,)``, or with ``bump = (m₀, s)`` ``(nM², n·exp(−(|M| − m₀)²/2s²))`` → ``(N, 1)`` or ``(N, 2)``."""
    m = np.asarray(m, np.float64)
    cols = [n * m * m]
    if bump is not None:
        cols.append(n * np.exp(-0.5 * ((np.abs(m) - bump[0]) / bump[1]) ** 2))
    return np.stack(cols, axis=1)
