"""The WC-RG model (registered kind ``"wcrg"``): a Gibbs energy per scale, sampled coarse to fine.

``p(x) = p_θ_J(x_J) Π_{j=1..J} p̄_θ_j(x̄_j | x_j)`` over the periodic orthogonal DWT
(:mod:`phigen.rg.factor`, Daubechies-4 by default). Each factor is ``exp(−θ·Φ)/Z`` with the features of
:mod:`phigen.rg.gibbs` (linear, quadratic over a (2k+1)² neighbourhood among the 3 normalised detail
channels and with the coarse field, and a scalar potential of the reconstructed finer field); the
coarsest factor is an unconditional energy of the same family on the normalised x_J. Every θ is the
closed-form score-matching solution. Sampling: x_J by MALA (with global flip proposals, which keep
the sign symmetry of φ⁴-like fields mixing), then one MALA chain per field at each finer scale given
the coarser field, with a step size adapted per scale. The same number of steps at every scale makes
the cost linear in the number of pixels (:meth:`WCRGModel.sampling_cost`).

All energies are translation invariant, so a model fitted on L×L fields can sample other sizes whose
sides are multiples of 2^J (and at least 2k+1 at the coarsest scale); the normalisation statistics
and the coarse-field energy are those of the training size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least, check_positive
from ..errors import InputError, ModelFileError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from ..samplers._rng import standard_normal
from .factor import WaveletFactorisation, per_scale_std
from ._shifts import level_shifts, shifted_fields
from .gibbs import (LevelConstants, LevelSpec, modulus_scales, modulus_statistics, score_matching_system,
                    sample_level, solve_score_matching)

__all__ = ["WCRGModel", "WCRGConfig"]


def _per_level(value, J: int, name: str) -> tuple[int, ...]:
    """An int, or a sequence of J ints (level 1 = finest first)."""
    if np.ndim(value) == 0:
        return (check_int_at_least(value, name, 0),) * J
    vals = tuple(check_int_at_least(v, name, 0) for v in value)
    if len(vals) != J:
        raise ParameterError(f"{name} must be one integer or {J} integers (one per level, finest first); got {value!r}")
    return vals


# Fit options renamed so that "steps" means training steps in every model's fit.
_RENAMED = {"steps": "sample_steps", "adapt": "sample_adapt", "coarse_steps": "coarse_sample_steps",
            "coarse_adapt": "coarse_sample_adapt"}


@dataclass(frozen=True)
class WCRGConfig:
    """Options of :meth:`WCRGModel.fit` (docs/rg.md: what each does and the measurements behind
    the defaults, on critical 64² φ⁴).

    Energies: ``J`` DWT levels (default: coarsest side ≈ 8) of wavelet ``wavelet``; ``k`` the
    neighbourhood half-width of the quadratic couplings per conditional level (an int, or J ints,
    finest first); ``k_coarse`` that of the coarsest energy; ``n_bumps`` Gaussian bumps of the scalar
    potential on [−``bump_range``, ``bump_range``] (normalised units) at the conditional levels,
    ``coarse_bumps`` at the coarsest; ``quartic``: add t⁴/24.

    Score matching: ``ridge`` / ``coarse_ridge`` the relative ridge of the preconditioned normal
    equations at the conditional levels / the coarsest; ``validation_fraction`` of the fields held
    out to report the loss out of sample; ``sign_symmetric``: the law is invariant under x → −x, fit
    on the fields and their negatives (odd coefficients exactly zero); ``shifts``: level l is fitted
    on up to ``min(4^(l−1), shifts)`` periodic shifts of the training fields (1: off); ``chunk``:
    fields per accumulation chunk of the normal equations (memory only).

    Calibration (moment matching after score matching): ``calibrate`` passes of each conditional
    level's same-channel quadratic couplings towards the data's detail spectra (0: off), with
    ``calibrate_fields`` chains at the finest level; ``calibrate_coarsest``: also match the coarsest
    field's variance; ``magnetisation_terms``: add n·(a M² + b M⁴) of the coarsest field's mean M to
    its energy, (a, b) by moment matching.

    Sampling (stored with the model; ``sample`` can override): ``sample_steps`` MALA steps per
    conditional level with ``sample_adapt`` of warm-up, ``coarse_sample_steps`` /
    ``coarse_sample_adapt`` at the coarsest level (small but critical: it needs the longer chain);
    ``precondition``: every chain runs with the level's Fourier mass matrix. ``check_samples``: draw
    this many fields after fitting and record the std per scale against the data (0: skip).

    Modulus features (0: off, the φ⁴ default): ``modulus`` orientations ℓ of the finest-octave Morlet
    wavelet ψ_ℓ on each conditional level's finer field r; with t_ℓ = |ψ_ℓ ⋆ r|/μ_ℓ (μ_ℓ the data's
    mean), the energy gains Σ t_ℓ, ``modulus_bumps`` Gaussian bumps of t_ℓ on [0, ``modulus_range``],
    and Σ t_ℓ·v_ℓ with v_ℓ the conditioning field's relative amplitude one octave coarser
    (:mod:`phigen.rg.gibbs`; docs/rg.md, "Modulus features").
    """

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
    validation_fraction: float = 0.1
    sign_symmetric: bool = False
    shifts: int = 16
    chunk: int = 16
    calibrate: int = 3
    calibrate_fields: int = 128
    calibrate_coarsest: bool = False
    magnetisation_terms: bool = True
    sample_steps: int = 500
    sample_adapt: int = 200
    coarse_sample_steps: int = 8000
    coarse_sample_adapt: int = 1000
    precondition: bool = False
    check_samples: int = 16
    modulus: int = 0
    modulus_bumps: int = 6
    modulus_range: float = 3.0
    modulus_linear: bool = True
    modulus_cross: bool = True

    def __post_init__(self):
        if np.ndim(self.k) == 0:
            check_int_at_least(self.k, "k", 0)
        else:  # a list from JSON or the CLI: a hashable tuple
            object.__setattr__(self, "k", tuple(check_int_at_least(v, "k", 0) for v in self.k))
        for name in ("k_coarse", "n_bumps", "coarse_bumps", "calibrate", "check_samples", "modulus", "modulus_bumps"):
            check_int_at_least(getattr(self, name), name, 0)
        for name in ("shifts", "chunk", "calibrate_fields"):
            check_int_at_least(getattr(self, name), name, 1)
        for name in ("bump_range", "ridge", "coarse_ridge", "modulus_range"):
            check_positive(getattr(self, name), name)
        if not 0 <= self.validation_fraction < 1:
            raise ParameterError(f"validation_fraction must be in [0, 1); got {self.validation_fraction!r}")
        for steps, adapt in (("sample_steps", "sample_adapt"), ("coarse_sample_steps", "coarse_sample_adapt")):
            s, a = getattr(self, steps), getattr(self, adapt)
            check_int_at_least(s, steps, 1)
            if int(a) != a or not 0 <= a < s:
                raise ParameterError(f"{adapt} (the warm-up of {steps}) must be an integer in [0, {steps}); got {a!r}")

    @classmethod
    def from_options(cls, config: "WCRGConfig | None" = None, options=None) -> "WCRGConfig":
        """``config`` (default: the defaults) with ``options`` (field names) replacing its fields;
        an unknown option, or a renamed one, is a ParameterError that names the right one."""
        return config_from_options(cls, config, options, "fit wcrg (in every fit, 'steps' means training steps; "
                                   "WC-RG's MALA steps at sampling are named apart)", renamed=_RENAMED)


@register_model("wcrg")
class WCRGModel:
    """Wavelet-conditional renormalisation-group Gibbs model (see the module docstring)."""

    def __init__(self, factorisation: WaveletFactorisation, specs: tuple, thetas: tuple, field_shape,
                 sampling: dict | None = None, training: dict | None = None, magnetisation=None):
        self.factorisation = factorisation
        self.specs = tuple(specs)    # J conditional specs (level 1 first), then the coarsest
        self.thetas = tuple(np.asarray(t, np.float32) for t in thetas)
        self._shape = tuple(int(s) for s in field_shape)
        # files written before the Fourier mass matrix existed sample without it, as they were measured
        self.sampling = {"steps": 500, "adapt": 200, "coarse_steps": 8000, "coarse_adapt": 1000, "precondition": False,
                         **(sampling or {})}
        self.training = training or {}
        # (a, b) of the coarsest field's magnetisation terms n·(a M² + b M⁴), set by moment matching,
        # or (a, b, A, m₀, s) with the bump of a conditional model's per-condition-width mode (its .at(c))
        self.magnetisation = np.zeros(2, np.float32) if magnetisation is None else np.asarray(magnetisation, np.float32)
        self.last_sample_info: list = []

    # --- protocol properties ---------------------------------------------------------------------
    @property
    def field_shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def J(self) -> int:
        return self.factorisation.J

    @property
    def n_params(self) -> int:
        return int(sum(t.size for t in self.thetas))

    def level_constants(self, level: int) -> LevelConstants:
        """Constants of conditional level ``level`` (1 … J), or of the coarsest energy (level J+1)."""
        f = self.factorisation
        if level == f.J + 1:
            return LevelConstants.coarsest()
        j = level - 1
        return LevelConstants.conditional(f.wavelet, f.detail_mean[j], f.detail_std[j], f.coarse_mean[level],
                                          f.coarse_std[level], f.coarse_mean[level - 1], f.coarse_std[level - 1])

    # --- fitting ---------------------------------------------------------------------------------
    fit_config = WCRGConfig  # fit(..., config=None, **options): every field of WCRGConfig is an option

    @classmethod
    def fit(cls, fields, *, key, progress=None, config: "WCRGConfig | None" = None, **options):
        """Fit on ``fields`` ``(N, H, W)``: per level, the closed-form score-matching θ, then the
        spectral calibration and the magnetisation terms, then a check draw.

        ``config``: a :class:`WCRGConfig` (default: the defaults); ``options``: any of its fields,
        which override it (``WCRGModel.fit(x, key=k, J=3, ridge=1e-3)``). The steps, each a method:
        :meth:`_level_specs` (one feature spec per level), :meth:`_fit_level` (score matching on the
        level's shifted coefficients), :func:`_calibrate_spectra` (moment matching), then
        ``check_samples`` draws judged by :meth:`scale_report`.
        """
        cfg = WCRGConfig.from_options(config, options)
        x = as_fields(fields, name="training fields")
        if x.shape[0] < 2:
            raise InputError(f"need at least 2 training fields; got {x.shape[0]}")
        t_start = time.perf_counter()
        truth = x
        n_val = int(round(cfg.validation_fraction * x.shape[0])) if x.shape[0] >= 20 else 0
        if cfg.sign_symmetric:  # augment train and validation parts separately (no leakage between them)
            tr, va = x[: len(x) - n_val], x[len(x) - n_val:]
            x = np.concatenate([tr, -tr, va, -va])
            n_val *= 2
        fact = WaveletFactorisation.fit(x, wavelet=cfg.wavelet, J=cfg.J)
        specs = cls._level_specs(cfg, fact, x.shape[-2:], x[: len(x) - n_val])
        model = cls(fact, tuple(specs), (), x.shape[1:],
                    {"steps": cfg.sample_steps, "adapt": cfg.sample_adapt, "coarse_steps": cfg.coarse_sample_steps,
                     "coarse_adapt": cfg.coarse_sample_adapt, "precondition": bool(cfg.precondition)})
        thetas, levels = [], []
        from tqdm.auto import tqdm

        with tqdm(total=fact.J + 1, desc="fit wcrg", unit="level", disable=None if progress is None else not progress) as bar:
            for lvl in range(1, fact.J + 2):
                theta, rec = model._fit_level(lvl, x, n_val, cfg)
                thetas.append(theta)
                levels.append(rec)
                bar.update(1)
        model.thetas = tuple(np.asarray(t, np.float32) for t in thetas)
        cal = {}
        if cfg.calibrate:
            t0 = time.perf_counter()
            cal = _calibrate_spectra(model, x[: len(x) - n_val], n_iter=cfg.calibrate, n_fields=cfg.calibrate_fields,
                                     calibrate_coarsest=bool(cfg.calibrate_coarsest),
                                     magnetisation_terms=bool(cfg.magnetisation_terms),
                                     key=jax.random.fold_in(key, 1000))
            for rec in levels:
                rec["calibration"] = cal.get(rec["level"])
            levels[-1]["calibration_seconds"] = time.perf_counter() - t0
        model.training = {"levels": levels, "std_growth": fact.std_growth.tolist(), "ridge": cfg.ridge,
                          "coarse_ridge": cfg.coarse_ridge,
                          "sign_symmetric": bool(cfg.sign_symmetric), "shifts": int(cfg.shifts),
                          "calibrate": int(cfg.calibrate), "magnetisation": model.magnetisation.tolist(),
                          "calibration_notes": list(cal.get("skipped", [])),
                          "n_validation": n_val, "fit_seconds_solve": time.perf_counter() - t_start}
        if cfg.check_samples:
            samples = model.sample(int(cfg.check_samples), key=jax.random.fold_in(key, 1), progress=progress)
            model.training["check"] = model.scale_report(samples, truth)
        return model

    @staticmethod
    def _level_specs(cfg: "WCRGConfig", fact: WaveletFactorisation, shape, fields=None) -> list:
        """The feature spec of each conditional level (finest first), then of the coarsest energy;
        refuses a neighbourhood wider than its level. ``fields``: training fields, needed for the
        units μ_ℓ of the modulus features when ``cfg.modulus`` > 0."""
        ks = _per_level(cfg.k, fact.J, "k")
        n_orient = int(getattr(cfg, "modulus", 0))
        modulus = [{} for _ in ks]
        if n_orient:
            if fields is None:
                raise ParameterError("modulus features need the training fields for their units")
            sub = np.asarray(fields[:64], np.float32)
            scale = [tuple(modulus_scales(fact.normalise_coarse(fact.coarse(sub, lvl), lvl), n_orient).tolist())
                     for lvl in range(fact.J + 1)]
            n_b = int(cfg.modulus_bumps)
            centres = tuple(np.round(np.linspace(0.0, cfg.modulus_range, n_b), 6).tolist()) if n_b else ()
            width = float(cfg.modulus_range) / max(n_b - 1, 1)
            modulus = [dict(modulus=n_orient, modulus_centres=centres, modulus_width=width,
                            modulus_linear=bool(cfg.modulus_linear), modulus_cross=bool(cfg.modulus_cross),
                            modulus_scale=scale[lvl - 1], coarse_modulus_scale=scale[lvl]) for lvl in range(1, fact.J + 1)]

        def bumps(n):
            centres = tuple(np.round(np.linspace(-cfg.bump_range, cfg.bump_range, n), 6).tolist()) if n else ()
            return centres, (2.0 * cfg.bump_range / (n - 1)) if n > 1 else float(cfg.bump_range)

        centres, width = bumps(cfg.n_bumps)
        specs = [LevelSpec(3, True, k=kj, centres=centres, width=width, quartic=cfg.quartic, wavelet=cfg.wavelet, **mod)
                 for kj, mod in zip(ks, modulus)]
        centres, width = bumps(cfg.coarse_bumps)
        specs.append(LevelSpec(1, False, k=int(cfg.k_coarse), centres=centres, width=width, quartic=cfg.quartic,
                               wavelet=cfg.wavelet))
        h, w = shape
        for lvl, spec in enumerate(specs, start=1):
            side = min(h, w) // 2 ** min(lvl, fact.J)
            if side < spec.min_side():
                raise ParameterError(f"level {lvl} is {side} pixels wide, smaller than its neighbourhood 2k+1 = "
                                     f"{spec.min_side()}; use a smaller k (or fewer levels J)")
        return specs

    def _fit_level(self, lvl: int, x, n_val: int, cfg: "WCRGConfig") -> tuple[np.ndarray, dict]:
        """Score-matching θ of level ``lvl`` (1 … J conditional, J+1 the coarsest) on the training part
        of ``x`` (its last ``n_val`` fields are the validation part), and the level's record."""
        t0 = time.perf_counter()
        fact = self.factorisation
        spec, consts = self.specs[lvl - 1], self.level_constants(lvl)
        if lvl <= fact.J:  # (x_lvl, normalised details of lvl): the pairs of the conditional p̄(x̄_lvl | x_lvl)
            cond, y = fact.level_data(x, lvl)
        else:
            cond, y = None, fact.normalise_coarse(fact.coarse(x, fact.J), fact.J)[:, None]
        n_tr = len(y) - n_val
        train_y, val_y = y[:n_tr], y[n_tr:]
        train_c = None if cond is None else cond[:n_tr]
        n_shift = level_shifts(min(lvl, fact.J), cfg.shifts)
        if len(n_shift) > 1:  # the same law, new coefficients: refit on shifted training fields
            train_c, train_y = _shifted_level_data(fact, x[:n_tr], lvl, n_shift)
        M, b, n = score_matching_system(spec, consts, train_y, train_c, chunk=cfg.chunk)
        sol = solve_score_matching(M, b, n, ridge=cfg.ridge if lvl <= fact.J else cfg.coarse_ridge)
        dof = int(np.prod(y.shape[1:]))
        rec = {"level": lvl, "kind": "conditional" if lvl <= fact.J else "coarse", "shape": list(y.shape[1:]),
               "n_params": spec.n_features, "k": spec.k, "condition_number": sol.condition_number,
               "preconditioned_condition_number": sol.preconditioned_condition_number,
               "score_matching_loss_per_dof": sol.loss / dof}
        if n_val:
            Mv, bv, nv = score_matching_system(spec, consts, val_y, None if cond is None else cond[n_tr:],
                                               chunk=cfg.chunk)
            th = sol.theta
            rec["validation_loss_per_dof"] = float((0.5 * th @ (Mv / nv) @ th - th @ (bv / nv)) / dof)
        # reference: the loss of the unit Gaussian energy ½|y|² (−½ per dof); lower is better
        rec["fit_seconds"] = time.perf_counter() - t0
        return sol.theta, rec

    # --- sampling --------------------------------------------------------------------------------
    def _check_sample_shape(self, shape) -> tuple[int, int]:
        if shape is None:
            return self._shape
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ParameterError(f"shape must be (H, W); got {shape!r}")
        f = self.factorisation
        if shape[0] % 2**f.J or shape[1] % 2**f.J:
            raise ParameterError(f"this WC-RG model (fitted on {self._shape[0]}×{self._shape[1]} with J={f.J} levels) "
                                 f"can sample sizes whose sides are multiples of 2^J = {2**f.J}; got {shape[0]}×{shape[1]}")
        coarse = min(shape) // 2**f.J
        need = self.specs[-1].min_side()
        if coarse < need:
            raise ParameterError(f"size {shape[0]}×{shape[1]} gives a {coarse}-pixel coarsest field, smaller than the "
                                 f"coarse energy's neighbourhood ({need}); the smallest compatible side is "
                                 f"{need * 2**f.J}")
        return shape

    def sample(self, n: int, *, key, shape=None, steps: int | None = None, coarse_steps: int | None = None,
               precondition: bool | None = None, progress=None, from_coarse=None):
        """``n`` fields ``(n, H, W)`` drawn coarse to fine (``shape`` defaults to the training size).

        ``steps`` / ``coarse_steps`` override the MALA steps per conditional level / at the coarsest
        level (warm-up shortened in proportion); ``precondition`` overrides the model's choice of the
        Fourier mass matrix (``sampling["precondition"]``). The chains of a level run in batches
        (:meth:`_chain_batch`: the calibration's chain count at the training size when ``n`` is at
        least half of it, so the calibration's compiled kernels are reused). The per-level step sizes,
        acceptances (averaged over batches), batch sizes and mass-matrix conditioning are left in
        ``self.last_sample_info``.

        ``from_coarse``: super-resolution (:mod:`phigen.rg.superres`): ``n`` coarse fields ``x_j``
        ``(n, H/2^j, W/2^j)`` (the DWT low-pass of the model's wavelet) to start from; only the levels
        ``j … 1`` are sampled, so the low-pass of every output equals its input.
        """
        from tqdm.auto import tqdm

        n = check_int_at_least(n, "n", 1)
        shape = self._check_sample_shape(shape)
        f = self.factorisation
        top = f.J + 1  # the first level sampled: the coarsest energy, or the level below given coarse fields
        x = None
        if from_coarse is not None:
            from .superres import coarse_level, read_coarse

            xc, _ = read_coarse(from_coarse)
            if len(xc) != n:
                raise ParameterError(f"from_coarse holds {len(xc)} coarse fields for n = {n} samples")
            top = coarse_level(xc.shape[-2:], shape, f.J, kind="this WC-RG model")
            x = jnp.asarray(xc)
        cfg = self._steps(steps, coarse_steps)
        pre = bool(cfg.get("precondition", False) if precondition is None else precondition)
        batch = {lvl: self._chain_batch(lvl, n, shape) for lvl in range(1, f.J + 2)}
        n_batches = {lvl: -(-n // b) for lvl, b in batch.items()}
        total = (cfg["coarse_steps"] * n_batches[f.J + 1] if top > f.J else 0) + cfg["steps"] * sum(
            n_batches[l] for l in range(1, min(top, f.J) + 1))
        infos = []
        k_coarse, k_levels = jax.random.split(key)
        with tqdm(total=total, desc="sample wcrg", unit="step", disable=None if progress is None else not progress) as bar:
            hJ, wJ = shape[0] // 2**f.J, shape[1] // 2**f.J
            for lvl in range(top, 0, -1):
                coarsest = lvl > f.J
                key_l = k_coarse if coarsest else jax.random.fold_in(k_levels, lvl)
                b, nb = batch[lvl], n_batches[lvl]
                rows = np.arange(nb * b) % n  # the padded chains repeat the first fields' conditioning
                outs, level_infos = [], []
                for i in range(nb):
                    ka, kb = jax.random.split(key_l if nb == 1 else jax.random.fold_in(key_l, i))
                    if coarsest:
                        y0 = _white_noise(ka, (b, 1, hJ, wJ))
                        y, info = sample_level(self.thetas[-1], self.specs[-1], self.level_constants(lvl), y0, key=kb,
                                               n_steps=cfg["coarse_steps"], n_adapt=cfg["coarse_adapt"], flip=True,
                                               bar=bar, magnetisation=self._magnetisation_or_none(), precondition=pre)
                        outs.append(f.unnormalise_coarse(y[:, 0], f.J))
                    else:
                        xc = x if b == n and nb == 1 else x[rows[i * b:(i + 1) * b]]
                        y0 = _white_noise(ka, (b, 3) + tuple(xc.shape[-2:]))
                        d, info = sample_level(self.thetas[lvl - 1], self.specs[lvl - 1], self.level_constants(lvl), y0,
                                               xc, key=kb, n_steps=cfg["steps"], n_adapt=cfg["adapt"], bar=bar,
                                               precondition=pre)
                        outs.append(f.refine(xc, d, lvl))
                    level_infos.append(info)
                x = outs[0] if nb == 1 else jnp.concatenate(outs)
                x = x if len(x) == n else x[:n]
                infos.append({"level": lvl, "chain_batches": [b] * nb,
                              **{k: float(np.mean([getattr(r, k) for r in level_infos])) if k != "n_steps" else
                                 level_infos[0].n_steps for k in level_infos[0]._fields}})
        self.last_sample_info = infos
        return x

    def _chain_batch(self, level: int, n: int, shape) -> int:
        """MALA chains per batch at ``level`` when drawing ``n`` fields of ``shape``: the calibration's
        chain count there (``sampling["chains"]``) whenever ``n`` is at least half of it, the larger ``n``
        in batches of it, so that sampling right after a fit runs the kernels the calibration compiled
        (on a CPU a level's kernel takes seconds to compile: more than its chains take to run at
        these sizes) and memory stays bounded; ``n`` otherwise (or at another shape)."""
        chains = self.sampling.get("chains")
        if not chains or tuple(shape) != tuple(self._shape):
            return n
        c = int(chains[level - 1])
        return c if 2 * n >= c else n

    def _magnetisation_or_none(self):
        return None if not np.any(self.magnetisation) else self.magnetisation

    def _steps(self, steps, coarse_steps) -> dict:
        cfg = dict(self.sampling)
        if steps is not None:
            s = check_int_at_least(steps, "steps", 2)
            cfg["adapt"] = int(round(cfg["adapt"] * s / cfg["steps"]))
            cfg["steps"] = s
        if coarse_steps is not None:
            s = check_int_at_least(coarse_steps, "coarse_steps", 2)
            cfg["coarse_adapt"] = int(round(cfg["coarse_adapt"] * s / cfg["coarse_steps"]))
            cfg["coarse_steps"] = s
        return cfg

    def sampling_cost(self, shape=None, *, steps: int | None = None, coarse_steps: int | None = None) -> dict:
        """Energy-gradient evaluations per chain at each level and their pixel count (coarse to fine).

        ``site_evaluations = Σ_levels steps_level × variables_level``: linear in the number of pixels
        for a fixed number of steps per scale (3·h·w details per level sum to ≈ H·W).
        """
        shape = self._check_sample_shape(shape)
        f, cfg = self.factorisation, self._steps(steps, coarse_steps)
        levels = []
        hJ, wJ = shape[0] // 2**f.J, shape[1] // 2**f.J
        # the coarsest level also evaluates the energy at every flip proposal
        levels.append({"level": f.J + 1, "evaluations": 2 * cfg["coarse_steps"], "variables": hJ * wJ})
        for lvl in range(f.J, 0, -1):
            h, w = shape[0] // 2**lvl, shape[1] // 2**lvl
            levels.append({"level": lvl, "evaluations": cfg["steps"], "variables": 3 * h * w})
        return {"levels": levels, "site_evaluations": int(sum(l["evaluations"] * l["variables"] for l in levels)),
                "pixels": int(shape[0] * shape[1])}

    # --- diagnostics ------------------------------------------------------------------------------
    def scale_report(self, samples, truth) -> dict:
        """Std per scale of ``samples`` vs ``truth`` (detail channels per level, coarse fields) and the
        relative errors; JSON-serialisable."""
        f = self.factorisation
        s = per_scale_std(samples, f.wavelet, f.J)
        t = per_scale_std(truth, f.wavelet, f.J)
        rel = s["detail"] / t["detail"] - 1.0
        return {"detail_std_model": s["detail"].tolist(), "detail_std_truth": t["detail"].tolist(),
                "detail_std_rel_error": rel.tolist(), "max_abs_detail_rel_error": float(np.max(np.abs(rel))),
                "coarse_std_model": s["coarse"].tolist(), "coarse_std_truth": t["coarse"].tolist(),
                "std_growth_model": s["growth"].tolist(), "std_growth_truth": t["growth"].tolist(),
                "sampling": list(self.last_sample_info)}

    # --- files -----------------------------------------------------------------------------------
    def save(self, path):
        config, arrays = structure_record(self.factorisation, self.specs)
        arrays.update({f"theta/{i}": t for i, t in enumerate(self.thetas)})
        arrays["magnetisation"] = self.magnetisation
        return write_model_file(path, self.kind, config={**config, "shape": list(self._shape),
                                                         "sampling": self.sampling},
                                arrays=arrays, training=self.training)

    @classmethod
    def load(cls, path):
        mf = read_model_file(path, cls.kind)
        try:
            c = mf.config
            fact, specs = structure_from_file(mf)
            thetas = tuple(mf.arrays[f"theta/{i}"] for i in range(len(specs)))
            if any(t.shape != (s.n_features,) for t, s in zip(thetas, specs)):
                raise ValueError("parameter arrays do not match the level specifications")
            mag = mf.arrays.get("magnetisation")  # absent in files written before these terms existed
            if mag is not None and (np.shape(mag) not in ((2,), (5,)) or not np.all(np.isfinite(mag))
                                    or (np.shape(mag) == (5,) and mag[4] <= 0)):
                raise ValueError("the magnetisation coefficients must be (a, b) or (a, b, A, m0, s > 0), finite")
            return cls(fact, specs, thetas, c["shape"], c.get("sampling"), mf.training, magnetisation=mag)
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise ModelFileError(f"incomplete or inconsistent wcrg model file: {exc}", path=path) from None


def structure_record(fact: WaveletFactorisation, specs) -> tuple[dict, dict]:
    """``(config, arrays)`` of a WC-RG structure for a model file: the factorisation and the level
    specifications (the parameters are the caller's)."""
    config = {"wavelet": fact.wavelet, "J": fact.J,
              "specs": [{"channels": s.channels, "conditional": s.conditional, "k": s.k, "centres": list(s.centres),
                         "width": s.width, "quartic": s.quartic,
                         **({"modulus": s.modulus, "modulus_centres": list(s.modulus_centres),
                             "modulus_width": s.modulus_width, "modulus_scale": list(s.modulus_scale),
                             "coarse_modulus_scale": list(s.coarse_modulus_scale), "modulus_eps": s.modulus_eps,
                             "modulus_linear": s.modulus_linear, "modulus_cross": s.modulus_cross}
                            if s.modulus else {})} for s in specs]}
    return config, {f"factorisation/{k}": v for k, v in fact.to_arrays().items()}


def structure_from_file(mf) -> tuple[WaveletFactorisation, tuple]:
    """The factorisation and level specifications of a model file written with :func:`structure_record`
    (KeyError / ValueError when they are missing or do not fit together)."""
    c = mf.config
    fact = WaveletFactorisation.from_arrays(c["wavelet"], c["J"], {k.split("/", 1)[1]: v for k, v in
                                                                  mf.arrays.items() if k.startswith("factorisation/")})
    specs = tuple(LevelSpec(int(s["channels"]), bool(s["conditional"]), k=int(s["k"]),
                            centres=tuple(float(v) for v in s["centres"]), width=float(s["width"]),
                            quartic=bool(s["quartic"]), wavelet=c["wavelet"], **_modulus_record(s)) for s in c["specs"])
    if len(specs) != fact.J + 1:
        raise ValueError("parameter arrays do not match the level specifications")
    return fact, specs


def _modulus_record(s: dict) -> dict:
    """The modulus-feature fields of a spec record (none in files written before they existed)."""
    if not s.get("modulus"):
        return {}
    return {"modulus": int(s["modulus"]), "modulus_centres": tuple(float(v) for v in s["modulus_centres"]),
            "modulus_width": float(s["modulus_width"]), "modulus_scale": tuple(float(v) for v in s["modulus_scale"]),
            "coarse_modulus_scale": tuple(float(v) for v in s["coarse_modulus_scale"]),
            "modulus_eps": float(s["modulus_eps"]), "modulus_linear": bool(s.get("modulus_linear", True)),
            "modulus_cross": bool(s.get("modulus_cross", True))}


@partial(jax.jit, static_argnames=("shape",))
def _white_noise(key, shape):
    """N(0, 1) chain starts ``shape`` = (chains, …): phigen's exact fused normal (:mod:`phigen.samplers._rng`).
    ``jax.random.normal`` draws the same law, but on a CPU its kernel takes seconds to compile per shape
    (7 s for 64×3×16×16), more than the chains then take to run."""
    return standard_normal(key, shape, jnp.float32)


def _shifted_level_data(fact, fields, level: int, shift_list):
    """(coarse, normalised details) of ``level`` — or ``(None, normalised x_J[:, None])`` for the
    coarsest energy (level J+1) — of ``fields`` under every periodic shift of ``shift_list``."""
    xs = shifted_fields(fields, shift_list)
    if level > fact.J:
        return None, fact.normalise_coarse(fact.coarse(xs, fact.J), fact.J)[:, None]
    return fact.level_data(xs, level)


def _calibrate_spectra(model, fields, *, n_iter, n_fields, key, calibrate_coarsest=False,
                       magnetisation_terms=False) -> dict:
    """Moment-match the power spectrum of every detail channel of every level, coarse to fine, to the data's.

    Score matching's estimate of a misspecified energy is biased, and errors at coarse scales feed
    the conditionals below them. So each conditional level is calibrated on the MODEL's own coarse
    fields (drawn from the coarsest energy, then from the already calibrated coarser levels): the
    same-channel quadratic coefficients θ(Σ y_c(s) y_c(s+δ)) move by the Gaussian Newton step of
    :func:`_spectral_update` (the exponential family's maximum-likelihood direction for those
    statistics), ``n_iter`` times, with persistent MALA chains. The coarsest energy keeps its
    score-matching fit (its ``k_coarse``/``coarse_ridge`` set the magnetisation law) unless
    ``calibrate_coarsest``: then its variance alone is matched (measured on critical 64² φ⁴: the
    spectrum distance improves, 1.8 → 1.5, but U₄ sharpens, 0.593 → 0.614 against 0.592).
    ``model.thetas`` is updated in place. Returns ``{level: record}``.
    """
    from .gibbs import sample_level

    f = model.factorisation
    cfg = model.sampling
    thetas = [np.asarray(t, np.float64).copy() for t in model.thetas]
    fields = jnp.asarray(fields)
    # Chains per level: at least n_fields, and more at the small coarse levels (their few coefficients
    # per field fluctuate strongly at criticality) up to 4·n_fields, about 32k coefficients per channel.
    sizes = {lvl: f.level_shape(fields.shape[-2:], min(lvl, f.J)) for lvl in range(1, f.J + 2)}
    n_at = {lvl: int(min(4 * n_fields, max(n_fields, -(-32768 // (h * w))))) for lvl, (h, w) in sizes.items()}
    records, used = {}, {}
    x = None
    mag = np.zeros(2)
    for lvl in range(f.J + 1, 0, -1):
        coarsest = lvl > f.J
        spec, consts = model.specs[lvl - 1], model.level_constants(lvl)
        if coarsest:
            y_data = f.normalise_coarse(f.coarse(fields, f.J), f.J)[:, None]
            steps, adapt = cfg["coarse_steps"], cfg["coarse_adapt"]
        else:
            c_data, y_data = f.level_data(fields, lvl)
            steps, adapt = cfg["steps"], cfg["adapt"]
            if spec.modulus:  # the modulus features' data moments (matched with the spectra below)
                m_data = modulus_statistics(spec, consts, y_data, c_data)
                mod_block = spec.blocks()["modulus"]
        v_data = np.asarray(jnp.mean(y_data**2, axis=(0, 2, 3)), np.float64)
        p_data = _channel_spectra(y_data)
        terms, basis = _spectral_basis(spec, y_data.shape[-2:])
        k = jax.random.fold_in(key, lvl)
        n = n_at[lvl] if x is None else min(n_at[lvl], len(x))
        used[lvl] = n
        x = None if x is None else x[:n]
        yk = _white_noise(k, (n,) + tuple(y_data.shape[1:])) * jnp.sqrt(jnp.asarray(v_data, jnp.float32))[:, None, None]
        history, spectral, mag_history, mod_history = [], [], [], []
        use_mag = coarsest and magnetisation_terms
        if use_mag:
            s_data = _magnetisation_statistics(y_data)
            # Fields whose mean is fixed (periodic vorticity, a density contrast) have nM² ≈ 0 on every
            # field: the moment-matching Newton step then drives a → ∞, the coarse chains go unstable
            # and every finer level is calibrated on garbage (turbulence: variance ×100). The terms only
            # describe a fluctuating magnetisation, so they are skipped when the data's nM² (in units
            # of the per-site variance, 1 after normalisation) is negligible.
            if float(np.mean(s_data[:, 0])) < _MAGNETISATION_MIN_NM2:
                use_mag = False
                records.setdefault("skipped", []).append(
                    f"magnetisation terms: the training fields' mean does not fluctuate "
                    f"(E[nM²] = {float(np.mean(s_data[:, 0])):.2g} < {_MAGNETISATION_MIN_NM2})")
        # the magnetisation Newton step needs a few passes even when the spectra get one: (a, b) start
        # at 0, where the chains are far less magnetised than critical data (training nM² −73 % on fast
        # φ⁴), and one step from there lands +21 % off; the coarsest level is cheap (one small channel)
        passes = max(n_iter, _MAGNETISATION_MIN_PASSES) if use_mag else n_iter
        for it in range(passes + 1):
            # persistent chains: after the first pass they are warm and half the steps re-equilibrate them
            m = steps if it == 0 else max(2, steps // 2)
            # the magnetisation terms go in even while (a, b) = (0, 0) (they add exact zeros): every pass
            # then runs the same compiled kernel
            yk, _ = sample_level(thetas[lvl - 1], spec, consts, yk, x, key=jax.random.fold_in(k, it + 1),
                                 n_steps=m, n_adapt=min(adapt, m // 2) if it == 0 else min(adapt, m // 4), flip=coarsest,
                                 magnetisation=mag if use_mag else None,
                                 precondition=bool(cfg.get("precondition", False)))
            if use_mag:
                s_model = _magnetisation_statistics(yk)
                mag_history.append((s_model.mean(0) / s_data.mean(0) - 1.0).tolist())
                if it < passes:
                    # Newton for an exponential family: dE[s]/dθ = −Cov(s), so θ += Cov⁻¹(E_model − E_data),
                    # with Cov the mean of the model's and the data's (the trapezoidal secant between the
                    # two laws): the model's alone overshoots when its chains are far less magnetised than
                    # the data (small Cov, large step; seen on fast φ⁴: nM² error −0.73 → +4.6 in one pass)
                    cov = 0.5 * (np.cov(s_model.T) + np.cov(s_data.T))
                    mag = mag + np.linalg.solve(cov + 1e-9 * np.trace(cov) * np.eye(2), s_model.mean(0) - s_data.mean(0))
            v_model = np.asarray(jnp.mean(yk**2, axis=(0, 2, 3)), np.float64)
            p_model = _channel_spectra(yk)
            history.append((v_model / v_data - 1.0).tolist())
            spectral.append(float(np.sqrt(np.mean(np.log(p_model / p_data) ** 2))))
            if not coarsest and spec.modulus:
                m_model = modulus_statistics(spec, consts, yk, x)
                mod_history.append(float(np.sqrt(np.mean((m_model.mean(0) / m_data.mean(0) - 1.0) ** 2))))
            if it < n_iter and not coarsest:
                _spectral_update(thetas[lvl - 1], terms, basis, p_model, p_data)
                if spec.modulus:
                    # the exponential family's Newton step (as for the magnetisation terms), halved: the
                    # spectral step moves the same laws in the same pass
                    cov = 0.5 * (np.cov(m_model.T) + np.cov(m_data.T))
                    cov += 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
                    thetas[lvl - 1][mod_block[0]:mod_block[1]] += 0.5 * np.linalg.solve(
                        cov, m_model.mean(0) - m_data.mean(0))
            elif it < n_iter and calibrate_coarsest:
                # the coarsest law is far from Gaussian at criticality (a double well for the mean): the
                # Gaussian Newton step on its whole spectrum diverges there, so only its variance is matched
                thetas[lvl - 1][terms[0][0]] += 0.5 * (1.0 / v_data[0] - 1.0 / v_model[0])
            if coarsest and not calibrate_coarsest and not use_mag:
                break  # its chains only provide the coarse fields the next level is calibrated on
        # the last pass drew the calibrated level's fields: they condition the next finer level
        x = f.unnormalise_coarse(yk[:, 0], f.J) if coarsest else f.refine(x, yk, lvl)
        if coarsest and not calibrate_coarsest and not use_mag:
            continue
        records[lvl] = {"fields": n, "variance_rel_error_per_pass": history,
                        "spectrum_rms_log_ratio_per_pass": spectral}
        if use_mag:
            records[lvl]["magnetisation_moment_rel_error_per_pass"] = mag_history
        if mod_history:
            records[lvl]["modulus_moment_rms_rel_error_per_pass"] = mod_history
    model.thetas = tuple(np.asarray(t, np.float32) for t in thetas)
    model.magnetisation = np.asarray(mag, np.float32)
    # the chains per level, finest first: sampling batches its chains the same way (WCRGModel._chain_batch)
    model.sampling["chains"] = [int(used[lvl]) for lvl in range(1, f.J + 2)]
    return records


_MAGNETISATION_MIN_PASSES = 3  # Newton passes of the magnetisation terms, whatever ``calibrate`` is
_MAGNETISATION_MIN_NM2 = 1e-3  # E[nM²] of the normalised coarsest field below which M is taken as fixed


def _magnetisation_statistics(y) -> np.ndarray:
    """``(n·M², n·M⁴)`` per field of the coarsest level ``y`` ``(N, 1, h, w)``, M the mean → ``(N, 2)``."""
    y = np.asarray(y, np.float64)[:, 0]
    n = y.shape[-2] * y.shape[-1]
    m = y.mean(axis=(-2, -1))
    return np.stack([n * m**2, n * m**4], axis=1)


def _channel_spectra(y) -> np.ndarray:
    """Mean power ``E|ŷ_c(k)|² / (h·w)`` of every channel of ``y`` ``(n, C, h, w)`` → ``(C, h, w)``, float64."""
    from ..stats.spectrum import power_spectrum_2d

    n, c, h, w = y.shape
    p = power_spectrum_2d(jnp.asarray(y, jnp.float32).reshape(n * c, h, w))
    return np.asarray(jnp.mean(jnp.asarray(p).reshape(n, c, h, w), axis=0), np.float64)


def _spectral_basis(spec, shape):
    """The same-channel quadratic terms θ(Σ_s y_c(s) y_c(s+δ)) as functions of k: for a Gaussian level
    ``E|ŷ_c(k)|²/(hw) = 1 / (2 Q_c(k))`` with ``Q_c(k) = Σ_δ θ_{c,δ} cos(k·δ)`` over the half offsets.
    Returns ({channel: feature indices}, (nδ, h, w) cosines in the same order)."""
    h, w = (int(v) for v in shape)
    ky = 2 * np.pi * np.fft.fftfreq(h)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(w)[None, :]
    start = spec.blocks()["yy"][0]
    offsets = spec.half_offsets
    terms = {c: [start + spec.yy_terms.index((c, c, d)) for d in offsets] for c in range(spec.channels)}
    basis = np.stack([np.cos(ky * a + kx * b) for a, b in offsets])
    return terms, basis


def _spectral_update(theta, terms, basis, p_model, p_data) -> None:
    """Newton step of the same-channel quadratic coefficients towards the data's spectrum, in place.

    The precision change that turns the model's spectrum into the data's, ΔQ(k) = ½(1/P_data − 1/P_model),
    is projected by weighted least squares onto the cosines of the level's offsets (weight P_model·P_data:
    the residual then counts in relative-power units). The Gaussian form is exact for the quadratic part
    and a Newton-like approximation for the rest; a few passes with fresh chains correct its error.
    """
    nb = basis.shape[0]
    b = basis.reshape(nb, -1)
    for c, idx in terms.items():
        dq = 0.5 * (1.0 / p_data[c] - 1.0 / p_model[c]).ravel()
        wts = (p_model[c] * p_data[c]).ravel()
        a = (b * wts).dot(b.T)
        rhs = (b * wts).dot(dq)
        theta[idx] += np.linalg.solve(a + 1e-9 * np.trace(a) / nb * np.eye(nb), rhs)
