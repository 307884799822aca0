"""``phigen quickstart``: the main job on the embedded default — critical φ⁴, several models, one report.

1. **Data**: ``data/phi4_64.h5`` (256 lattice φ⁴ fields of 64², κ = 0.34, λ = 1: critical, κ_c(λ = 1) =
   0.3403 ± 0.0005; see ``data/README.md``), looked up beside the package (source checkout, editable
   install) and in ``./data``. Where it is absent (an installed wheel) the same ensemble is generated
   with the recorded command, ``phigen.generate("phi4", size=64, n=256, seed=0, kappa=0.34, lam=1)``,
   into ``DIR/data/`` — about 5–6 minutes more on a shared 2-core CPU (81 s of CPU time), once: a later
   run into the same ``DIR`` reuses it.
   ``fast``: the first 128 of those fields block-averaged 2×2 to 32² (periodic, unlike a crop; the block average
   keeps every field's magnetisation, so U₄ is the 64² value, and a block-spin image of a critical
   field is critical); without the shipped file, 128 fields of 32² generated at κ = 0.34 (16 s more
   on an idle 2-core CPU; U₄ = 0.60 ± 0.01).
2. **Compare** (:func:`phigen.compare.compare_models`): the Gaussian reference (exact spectrum, U₄ = 0)
   and every available kind of :data:`BUDGETS` — WC-RG, scattering spectra (microcanonical), score
   diffusion — each fitted on the training half at the small budget listed there, sampling as many
   fields as the held-out half, judged next to the truth-vs-truth floor.
3. **Report** in ``DIR``: ``report.md`` / ``report.html`` (the table, with budgets, data source,
   stage times, total time and machine load above it), ``metrics.json`` (``quickstart`` block:
   stages, total seconds, budgets, machine), ``figures/``, ``samples/``, ``models/``.

Targets: full size under 10 minutes on a 2-core CPU, ``fast`` under 2 (CI). Measured on an idle 2-core
CPU (2026-12-05, a newer Xeon VM than the 2026-12-04 figures in docs/compare.md): full 193–329 s
(the VM's speed drifts), fast 52–74 s. A kind that is not registered
in this installation is skipped and said so; adding a model is one line in :data:`BUDGETS`.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import errors as E

__all__ = ["quickstart", "BUDGETS", "ModelBudget", "find_reference_data"]

KAPPA, LAM = 0.34, 1.0          # critical at λ = 1 (docs/critical.md: κ_c = 0.3403 ± 0.0005)
DATA_NAME = "phi4_64.h5"
FULL_FIELDS, FAST_BLOCK = 256, 2
FAST_FIELDS = 128               # fields kept in the fast run (64 training / 64 held out)


@dataclass(frozen=True)
class ModelBudget:
    """Fit and sampling options of one model kind in the quickstart, full size and ``fast``."""

    kind: str
    fit: Mapping[str, Any] = field(default_factory=dict)
    sample: Mapping[str, Any] = field(default_factory=dict)
    fast_fit: Mapping[str, Any] = field(default_factory=dict)
    fast_sample: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def options(self, fast: bool) -> tuple[dict, dict]:
        return (dict(self.fast_fit), dict(self.fast_sample)) if fast else (dict(self.fit), dict(self.sample))


# The models and their budgets (the sign symmetry of φ⁴ is passed by compare_models where a model takes
# it). Budgets: the full-size run must fit in 10 minutes on 2 CPU cores, the fast one in 2.
BUDGETS: tuple[ModelBudget, ...] = (
    ModelBudget("gaussian", note="reference: the training spectrum exactly, Gaussian statistics (U₄ = 0)"),
    # WC-RG with its defaults (k_coarse = 2 and a 10⁻² ridge at the coarsest level give the data's
    # magnetisation law; 3 spectral-calibration passes after score matching). The coarsest chain needs
    # its 8000 steps to converge that law. Steps and warm-ups (steps/2.5, coarse/8) are multiples of the
    # sampler's 100-step chunks, so each level compiles once: on a CPU the compilation, not the steps,
    # dominates at these sizes. Fast: one light spectral-calibration pass.
    ModelBudget("wcrg", fit={"check_samples": 0}, sample={"steps": 500, "coarse_steps": 8000},
                # fast: with whole chains on each side (32 training chains), leaving the magnetisation
                # terms out gave the coarsest energy a near-Gaussian law (U₄ 0.08–0.23 against the training
                # fields' 0.60); with them U₄ is 0.58–0.64, though the magnetisation's spread overshoots
                # (0.71–0.78 against 0.54): measured on the training half only
                fast_fit={"check_samples": 0, "calibrate": 1, "calibrate_fields": 32},
                fast_sample={"steps": 500, "coarse_steps": 8000},
                note="Gibbs energy per scale, closed-form score matching + spectral calibration; MALA steps per level"),
    ModelBudget("scattering", fit={"J": 4, "steps": 60}, fast_fit={"J": 3, "steps": 20},
                note="microcanonical: L-BFGS iterations per sample"),
    ModelBudget("diffusion", fit={"steps": 250, "batch_size": 16, "width": 8, "depth": 3}, sample={"nfe": 20},
                fast_fit={"steps": 50, "batch_size": 16, "width": 8, "depth": 1}, fast_sample={"nfe": 8},
                note="UNet denoiser, training steps; probability-flow ODE, network evaluations per field"),
    # WSGM (phigen.rg.score, kind "wsgm") joins with one ModelBudget line here once its budget is measured.
)


def find_reference_data(name: str = DATA_NAME) -> Path | None:
    """The shipped dataset ``data/<name>``: beside the package (source tree / editable install) or in
    ``./data``; ``None`` when neither exists (an installed wheel carries no data)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "data" / name, Path.cwd() / "data" / name):
        if cand.is_file():
            return cand
    return None


def _is_reference(path: Path) -> bool:
    """Is ``path`` the critical φ⁴ ensemble the quickstart expects (and not some other file of that name)?"""
    from .io import open_fields

    try:
        with open_fields(path) as ds:
            p = ds.params
            return (ds.field == "phi4" and tuple(ds.sample_shape) == (64, 64) and len(ds) >= FULL_FIELDS
                    and abs(float(p.get("kappa", -1)) - KAPPA) < 1e-9 and abs(float(p.get("lam", -1)) - LAM) < 1e-9)
    except E.PhigenError:
        return False


def _block_average(x: np.ndarray, b: int) -> np.ndarray:
    """``(N, H, W) -> (N, H/b, W/b)``: mean over b×b blocks (periodic, keeps each field's mean)."""
    n, h, w = x.shape
    return x.reshape(n, h // b, b, w // b, b).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def _prepare_data(out: Path, fast: bool, seed: int, say) -> tuple[Path, dict]:
    """The dataset to compare on and a record of where it came from."""
    from .generators import generate
    from .io import open_fields, validate, write_fields

    data_dir = out / "data"
    ref = find_reference_data()
    if ref is not None and not _is_reference(ref):
        say(f"quickstart: {ref} is not the critical φ⁴ ensemble (64², κ = {KAPPA}, λ = {LAM}); not using it")
        ref = None
    if not fast:
        if ref is not None:
            validate(ref, raise_on_error=True)
            return ref, {"source": "shipped", "path": str(ref), "description": f"{ref} (shipped)"}
        path = data_dir / DATA_NAME
        if path.exists() and _is_reference(path):
            return path, {"source": "generated earlier", "path": str(path),
                          "description": f"{path} (generated by an earlier quickstart)"}
        say(f"quickstart: {DATA_NAME} not found beside the package; generating it (256 fields of 64², "
            "about 5–6 minutes on 2 cores)")
        generate("phi4", path, size=64, n=FULL_FIELDS, seed=0, kappa=KAPPA, lam=LAM, overwrite=True, progress=None)
        return path, {"source": "generated", "path": str(path),
                      "description": f"{path}, generated now (phigen.generate('phi4', size=64, n=256, seed=0, "
                                     f"kappa={KAPPA}, lam={LAM}))"}
    path = data_dir / f"phi4_32_block{FAST_BLOCK}.h5"
    if ref is not None:
        with open_fields(ref) as ds:
            x = _block_average(np.asarray(ds[:FAST_FIELDS]), FAST_BLOCK)
            params = dict(ds.params)
            # the chains of the shipped file stay the groups of its block averages (whole-chain splits)
            groups = None if ds.groups is None else np.asarray(ds.groups)[:FAST_FIELDS]
            group_kind = ds.group_kind  # None exactly when the file records no groups
        write_fields(path, x, field="phi4", generator="phigen.quickstart:block-average", seed=0,
                     params={**params, "block": FAST_BLOCK}, overwrite=True, groups=groups, group_kind=group_kind,
                     config={"source": str(ref), "block": FAST_BLOCK, "fields": f"first {FAST_FIELDS}"})
        return path, {"source": "shipped, block-averaged", "path": str(path),
                      "description": f"the first {FAST_FIELDS} fields of {ref} block-averaged {FAST_BLOCK}×{FAST_BLOCK} "
                                     "to 32² (periodic; each field keeps its magnetisation, so U₄ is unchanged)"}
    path = data_dir / "phi4_32.h5"
    if not (path.exists() and _fast_generated_ok(path)):
        say(f"quickstart: {DATA_NAME} not found beside the package; generating {FAST_FIELDS} fields of 32² at κ = {KAPPA}")
        generate("phi4", path, size=32, n=FAST_FIELDS, seed=seed, kappa=KAPPA, lam=LAM, overwrite=True, progress=None)
    return path, {"source": "generated", "path": str(path),
                  "description": f"{path}: {FAST_FIELDS} fields of 32² generated at κ = {KAPPA}, λ = {LAM} "
                                 "(HMC + cluster updates)"}


def _fast_generated_ok(path: Path) -> bool:
    from .io import open_fields

    try:
        with open_fields(path) as ds:
            return ds.field == "phi4" and tuple(ds.sample_shape) == (32, 32) and len(ds) == FAST_FIELDS
    except E.PhigenError:
        return False


def _available(budgets: Sequence[ModelBudget], models, say) -> tuple[list[ModelBudget], list[str]]:
    """The budgets of the kinds to run (``models``: a subset, default all) that this install registers."""
    from .models import get_model_class

    known = {b.kind: b for b in budgets}
    if models is not None:
        models = [m.strip() for m in ([models] if isinstance(models, str) else models) if m.strip()]
        unknown = [m for m in models if m not in known]
        if unknown:
            raise E.ParameterError(f"quickstart has no budget for {', '.join(unknown)}; choose from {', '.join(known)}")
        chosen = [known[m] for m in models]
    else:
        chosen = list(budgets)
    run, skipped = [], []
    for b in chosen:
        try:
            get_model_class(b.kind)
        except E.ParameterError:
            say(f"quickstart: model {b.kind!r} is not available in this installation; skipped")
            skipped.append(b.kind)
            continue
        run.append(b)
    if not run:
        raise E.ParameterError("quickstart: none of the requested models is available")
    return run, skipped


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not on every platform
        return None


def quickstart(out_dir="phigen_quickstart", *, fast: bool = False, seed: int = 0, models: Sequence[str] | None = None,
               progress: bool | None = None, echo: bool = True) -> dict:
    """Run the built-in end-to-end comparison into ``out_dir`` (module docstring); returns the metrics.

    ``fast``: CI size (32², 128 fields, tiny budgets). ``models``: a subset of the kinds of
    :data:`BUDGETS` (default: all that are available). ``progress``: False silences the stage
    messages; ``echo``: print the table and where the report is.
    """
    import jax

    from .compare import compare_models, write_report

    t_start = time.perf_counter()
    load_start = _loadavg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        if progress is not False:
            print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)

    budgets, skipped = _available(BUDGETS, models, say)
    t0 = time.perf_counter()
    data, source = _prepare_data(out, fast, seed, say)
    t_data = time.perf_counter() - t0
    say(f"quickstart: data {source['description']}")

    fit_options, sample_options = {}, {}
    for b in budgets:
        fit_options[b.kind], sample_options[b.kind] = b.options(fast)
    metrics = compare_models(data, models=[b.kind for b in budgets], out_dir=out, test_fraction=0.5, seed=seed,
                             fit_options=fit_options, sample_options=sample_options, progress=say)

    total = time.perf_counter() - t_start
    t = metrics["timings"]
    stages = {"data": t_data, **{f"{k}.{s}": v[s] for k, v in t["models"].items() for s in ("fit", "sample", "statistics")},
              "truth_statistics": t["truth"], "figures": t["figures"]}
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
               "loadavg_start": load_start, "loadavg_end": _loadavg()}
    metrics["quickstart"] = {
        "fast": fast, "seed": seed, "data": {**source, "seconds": t_data}, "skipped_models": skipped,
        "budgets": {b.kind: {"fit": b.options(fast)[0], "sample": b.options(fast)[1], "note": b.note} for b in budgets},
        "stages_seconds": stages, "total_seconds": total, "machine": machine}
    metrics["preamble"] = _preamble(metrics, budgets, fast)
    metrics["report"] = write_report(metrics, out)
    if echo:
        print("\n".join(metrics["report"]["table_lines"]))
        print(f"done in {total:.0f} s — report: {metrics['report']['markdown']} (report.html, metrics.json, "
              f"figures/, samples/ beside it)", flush=True)
    return metrics


def _preamble(metrics: dict, budgets: Sequence[ModelBudget], fast: bool) -> list[str]:
    q = metrics["quickstart"]
    m = q["machine"]
    load = ""
    if m["loadavg_start"] is not None:
        load = f", load average {m['loadavg_start'][0]:.1f} at the start and {m['loadavg_end'][0]:.1f} at the end"
    lines = [f"phigen quickstart{' --fast' if fast else ''}: critical lattice φ⁴ (κ = {KAPPA}, λ = {LAM}; "
             f"κ_c = 0.3403 ± 0.0005). Data: {q['data']['description']}.", "",
             f"Total time {q['total_seconds']:.0f} s on {m['cpu_count']} CPU cores ({m['jax_backend']}){load}; "
             f"data {q['data']['seconds']:.1f} s.", "", "Budgets:", ""]
    for b in budgets:
        fit, samp = b.options(fast)
        txt = f"- {b.kind}: fit {_kv(fit)}; sample {_kv(samp)}"
        lines.append(txt + (f" — {b.note}" if b.note else ""))
    if q["skipped_models"]:
        lines += ["", f"Not available in this installation (skipped): {', '.join(q['skipped_models'])}."]
    return lines


def _kv(d: Mapping) -> str:
    return ", ".join(f"{k} = {v}" for k, v in d.items()) or "defaults"
