"""The ``phigen`` command line: a thin layer over the Python API (docs/architecture.md).

Every verb calls one public function (``phigen.generate``, ``phigen.io.info``, ``phigen.io.validate``,
``phigen.stats_report``, ``phigen.quickstart``, ...). Errors print one line
``phigen: error: ...`` on stderr and exit 1 (2 for bad usage); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import errors as E


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, no usage dump
        raise _UsageError(f"{self.prog.split()[-1] if ' ' in self.prog else 'usage'}: {message}")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _write_json(path, obj) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


# ---- verbs ---------------------------------------------------------------------------------------
def _cmd_generate(args) -> int:
    from .generators import generate

    # only the options given reach the generator, which refuses those its kind does not take
    given = {name: getattr(args, name) for name in _generate_options() if getattr(args, name, None) is not None}
    path = generate(args.kind, args.output, size=args.size, n=args.count, seed=args.seed, resume=args.resume,
                    overwrite=args.overwrite, batch_size=args.batch_size, progress=not args.quiet,
                    processes=args.processes, distributed=args.distributed, **given)
    if args.distributed:
        from .distributed import is_main_process

        if not is_main_process():
            return 0
    where = ""
    if (args.processes or 1) > 1 or args.distributed:
        from .io import open_fields

        with open_fields(path) as ds:
            n_shards = len(ds.shards or ())
        where = f" ({n_shards} shard{'s' if n_shards != 1 else ''} joined by the master file)"
    print(f"wrote {args.count} {args.kind} fields of {args.size}×{args.size} to {path}{where}")
    return 0


def _cmd_merge(args) -> int:
    from .io import merge_shards

    out = merge_shards(args.inputs, args.output, overwrite=args.overwrite, progress=not args.quiet)
    print(f"merged {len(args.inputs)} file{'s' if len(args.inputs) > 1 else ''} into {out}")
    return 0


def _generate_options() -> dict:
    """``{name: (FieldOption, [kinds])}``: every registered kind's options, merged by name (one
    ``--name`` flag serves all the kinds that declare it, with the same type)."""
    from .fields.kind import field_kinds

    merged: dict = {}
    for kind, spec in sorted(field_kinds().items()):
        for opt in spec.options:
            if opt.name in merged and (merged[opt.name][0].type, merged[opt.name][0].choices) != (opt.type, opt.choices):
                raise E.ParameterError(f"field kinds {merged[opt.name][1][0]!r} and {kind!r} declare option "
                                       f"{opt.flag} with different types")
            merged.setdefault(opt.name, (opt, []))[1].append(kind)
    return merged


def _add_generate_options(g) -> None:
    for name, (opt, kinds) in _generate_options().items():
        help_ = f"{', '.join(kinds)}: {opt.help}" if opt.help else ", ".join(kinds)
        if opt.type is bool:
            g.add_argument(opt.flag, dest=name, action="store_true", default=None, help=help_)
        elif opt.type == "range":
            g.add_argument(opt.flag, dest=name, metavar="LO:HI", help=help_)
        elif opt.type == "grid":
            g.add_argument(opt.flag, dest=name, metavar="X|START:STOP:NUM", help=help_)
        else:
            g.add_argument(opt.flag, dest=name, type=opt.type, choices=opt.choices, help=help_)


def _cmd_info(args) -> int:
    from .io import info

    d = info(args.file)
    if args.json:
        _write_json(args.json, d)
    if args.as_json:
        _print_json(d)
        return 0
    status = "complete" if d["complete"] else f"UNFINISHED ({d['n_samples']} of {d['n_total']})"
    print(f"{d['path']}: phigen-fields v{d['format_version']} written by phigen {d['phigen_version']} on {d['created']}")
    print(f"  field      {d['field']}  (generator {d['generator']}, seed {d['seed']})")
    print(f"  samples    {d['n_samples']} × {tuple(d['sample_shape'])}  [{status}]")
    if d["params"]:
        print("  params     " + ", ".join(f"{k}={v}" for k, v in sorted(d["params"].items())))
    if d["condition_names"]:
        print(f"  conditions {', '.join(d['condition_names'])}")
    if d["field_names"]:
        print(f"  channels   {', '.join(d['field_names'])}")
    g = d.get("groups")
    if g:
        each = (f"{g['min_size']}" if g["min_size"] == g["max_size"] else f"{g['min_size']}–{g['max_size']}")
        print(f"  groups     {g['n_groups']} (kind {g['kind']}; {each} field{'s' if g['max_size'] != 1 else ''} "
              "each; splits keep a group on one side)")
    if d["diagnostics"]:
        print(f"  diagnostics {', '.join(d['diagnostics'])}")
    if d.get("shards"):
        print(f"  shards     {len(d['shards'])} ({', '.join(d['shards'])}); 'phigen merge' makes one self-contained file")
    return 0


def _cmd_validate(args) -> int:
    from .io import validate

    rep = validate(args.file)
    if args.json:
        _write_json(args.json, {"path": rep.path, "ok": rep.ok, "n_samples": rep.n_samples, "problems": rep.problems})
    if rep.ok:
        print(f"{rep.path}: OK ({rep.n_samples} samples checked)")
        return 0
    for problem in rep.problems:
        print(f"phigen: error: {problem}", file=sys.stderr)
    return 1


def _cmd_stats(args) -> int:
    from .report import stats_report

    result = stats_report(args.file, ref=args.ref, out_dir=args.out, json_path=args.json, progress=not args.quiet)
    for line in result["summary_lines"]:
        print(line)
    return 0


def _scalars(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """The numbers of a (nested) result dict, as ``(dotted.key, value)``, arrays left out."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _scalars(v, f"{prefix}{k}.")
        elif isinstance(v, (bool, int, float)):
            out.append((f"{prefix}{k}", v))
    return out


def _cmd_check(args) -> int:
    from ._json import json_safe
    from .checks import check_file

    res = check_file(args.file, out_dir=args.out, max_fields=args.max_fields)
    if args.json:
        _write_json(args.json, json_safe(res))
    for key, value in _scalars({k: v for k, v in res.items() if k not in ("params", "figures")}):
        print(f"  {key:<36} {value:.6g}" if isinstance(value, float) else f"  {key:<36} {value}")
    for fig in res.get("figures") or []:
        print(f"figure: {fig}")
    return 0


def _cmd_critical(args) -> int:
    from .critical import binder_crossing, parse_kappa_range
    from .fields.phi4 import Phi4SamplerConfig

    if args.model != "phi4":
        raise E.ParameterError(f"critical supports 'phi4' only; got {args.model!r}")
    kappas = parse_kappa_range(args.kappa)
    out = Path(args.out) if args.out else None
    plot_path = (out / "binder.png") if out else (Path(args.json).with_suffix(".png") if args.json else None)
    res = binder_crossing(args.lam, args.size, kappas, n_steps=args.n_steps,
                          config=Phi4SamplerConfig(sampler=args.sampler, n_chains=args.n_chains), seed=args.seed,
                          progress=not args.quiet, json_path=args.json or (out / "critical.json" if out else None),
                          plot_path=plot_path)
    for c in res["crossings"]:
        print(f"L = {c['sizes'][0]:>3} × {c['sizes'][1]:>3}: crossing at κ = {c['kappa']:.5f} ± {c['kappa_err']:.5f}"
              f"  (U₄ = {c['binder_at_crossing']:.3f})")
    print(f"κ_c(λ = {res['lam']:g}) = {res['kappa_c']:.5f} ± {res['kappa_c_err']:.5f}")
    if plot_path:
        print(f"U₄(κ) plot: {plot_path}")
    return 0


def _parse_sets(items) -> dict:
    """``--set key=value`` options: values parsed as JSON when they can be (numbers, lists, bools)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise E.ParameterError(f"--set expects KEY=VALUE; got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip().replace("-", "_")] = v
    return out


def _given(args, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _cmd_fit(args) -> int:
    from .models import fit

    options = {**_given(args, ("steps", "J", "L", "mode", "batch_size", "condition")), **_parse_sets(args.set)}
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise E.FileExistsError_("model file exists; pass --overwrite to replace it", path=out)
    model = fit(args.model, args.data, out=out, seed=args.seed, test_fraction=args.test_fraction,
                split_seed=args.split_seed, max_fields=args.max_fields, progress=not args.quiet, **options)
    print(f"fitted {args.model} ({model.n_params} parameters) on {model.training['n_train']} fields "
          f"in {model.training['fit_seconds']:.1f} s → {out}")
    return 0


def _cmd_sample(args) -> int:
    from .models import sample

    options = {**_given(args, ("sampler", "nfe", "condition", "from_coarse")), **_parse_sets(args.set)}
    path = sample(args.model_file, args.count, out=args.output, seed=args.seed, batch_size=args.batch_size,
                  overwrite=args.overwrite, resume=args.resume, progress=not args.quiet, **options)
    print(f"wrote {args.count} samples to {path}")
    return 0


def _cmd_coarse_grain(args) -> int:
    from .rg.superres import coarse_grain_file

    path = coarse_grain_file(args.data, args.output, args.levels, wavelet=args.wavelet, overwrite=args.overwrite,
                             progress=not args.quiet)
    print(f"wrote the {args.levels}-level {args.wavelet} low-pass of {args.data} to {path}")
    return 0


def _cmd_quickstart(args) -> int:
    from ._quickstart import quickstart

    models = args.models.split(",") if args.models else None  # quickstart strips and skips empty names
    quickstart(args.output, fast=args.fast, seed=args.seed, models=models, progress=not args.quiet)
    return 0


def _cmd_compare(args) -> int:
    from .compare import compare_models

    models = [m.strip() for m in args.models.split(",") if m.strip()]

    def per_model(items, flag):
        out: dict = {}
        for item in items or []:
            head = item.split("=", 1)[0]
            if "=" not in item or "." not in head:
                raise E.ParameterError(f"{flag} expects KIND.KEY=VALUE; got {item!r}")
            kind, rest = item.split(".", 1)
            out.setdefault(kind.strip(), {}).update(_parse_sets([rest]))
        return out

    files = {}
    for item in args.model_file or []:
        if "=" not in item:
            raise E.ParameterError(f"--model-file expects KIND=PATH; got {item!r}")
        kind, path = item.split("=", 1)
        files[kind.strip()] = path
    if args.condition is not None:  # a conditional model judged value by value
        from .compare_conditions import compare_conditions

        if files:
            raise E.ParameterError("--model-file is not supported with --condition (models are fitted on the split)")
        metrics = compare_conditions(args.data, condition=args.condition, models=models, out_dir=args.output,
                                     hold_out=args.hold_out, test_fraction=args.test_fraction, seed=args.seed,
                                     fit_options=per_model(args.set_model, "--set-model"),
                                     sample_options=per_model(args.set_sample, "--set-sample"),
                                     n_splits=args.n_splits, progress=not args.quiet)
        for kind, m in metrics["models"].items():
            offs = ", ".join(f"{'/'.join(f'{v:g}' for v in r['value'])}{'*' if r['held_out'] else ''}: "
                             f"{r['n_off']}/{r['n_distances']}" for r in m["rows"])
            print(f"{kind}: off per condition ({'*' if any(metrics['held_out']) else ''}held out) {offs}")
        print(f"report: {Path(args.output) / 'report.md'} (and metrics.json, figures/)")
        return 0
    elif args.hold_out is not None:
        raise E.ParameterError("--hold-out names condition values: it needs --condition")
    metrics = compare_models(args.data, models=models, out_dir=args.output, test_fraction=args.test_fraction,
                             seed=args.seed, fit_options=per_model(args.set_model, "--set-model"),
                             sample_options=per_model(args.set_sample, "--set-sample"), model_files=files,
                             n_splits=args.n_splits, progress=not args.quiet)
    for line in metrics["report"]["table_lines"]:
        print(line)
    print(f"report: {metrics['report']['markdown']} (and report.html, metrics.json)")
    return 0


def _cmd_generalisation(args) -> int:
    from ._generalisation import generalisation

    report = generalisation(args.data, model=args.model, sizes=args.N, out_dir=args.output, seed=args.seed,
                            n_samples=args.n_samples, fit_options=_parse_sets(args.set),
                            sample_options=_parse_sets(args.sample_set), progress=not args.quiet)
    if args.json:
        _write_json(args.json, {k: v for k, v in report.items() if k != "report"})
    print(f"{'N':>6}  {'model vs model':<18}  {'sample vs train':<18}  regime")
    for r in report["results"]:
        mv, tv = r["model_similarity"], r["train_similarity"]
        print(f"{r['N']:>6}  {mv['value']:.3f} ± {mv['error']:<10.2g}  {tv['value']:.3f} ± {tv['error']:<10.2g}  "
              f"{r['regime']}")
    print(f"report: {report['report']['markdown']} (and generalisation.json, generalisation.png)")
    return 0


# ---- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="phigen", description="Synthetic physical fields and the statistics that prove them.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    from .models._base import available_models

    kinds = available_models()  # model lists in the help come from the registry, not a hand-kept list
    for add in _VERB_PARSERS:
        add(sub, kinds)
    return p


def _parser_generate(sub, kinds) -> None:
    from .fields.kind import field_kinds

    g = sub.add_parser("generate", help="ground-truth ensemble into a phigen HDF5 file")
    g.add_argument("kind", help=" | ".join(sorted(field_kinds())))
    g.add_argument("--size", type=int, required=True, help="lattice size N (fields are N×N)")
    g.add_argument("-n", "--count", type=int, required=True, help="number of fields")
    g.add_argument("-o", "--output", required=True, help="output .h5 file")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--resume", action="store_true", help="continue an interrupted run in the same file")
    g.add_argument("--overwrite", action="store_true", help="replace an existing file")
    g.add_argument("--batch-size", type=int, default=None, help="fields per flushed batch")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--processes", type=int, default=None, metavar="N",
                   help="start N processes on this machine (jax.distributed on 127.0.0.1): one shard each, "
                        "OUTPUT a master over them; phi4 at one kappa: its chains split over the N processes "
                        "(docs/scale_out.md)")
    g.add_argument("--distributed", action="store_true",
                   help="this is one process of a group started by srun / mpirun (jax.distributed detects it)")
    _add_generate_options(g)  # from the field kinds' specs (phigen.fields.kind)
    g.set_defaults(func=_cmd_generate)


def _parser_merge(sub, kinds) -> None:
    m = sub.add_parser("merge", help="join the shards of a multi-process run (or its master) into one self-contained file")
    m.add_argument("inputs", nargs="+", metavar="SHARD", help="all shard files of a set, or its master file")
    m.add_argument("-o", "--output", required=True, help="the self-contained .h5 file to write")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_cmd_merge)


def _parser_info(sub, kinds) -> None:
    i = sub.add_parser("info", help="describe a phigen file")
    i.add_argument("file")
    i.add_argument("--json", metavar="PATH", help="also write the description as JSON")
    i.add_argument("--as-json", action="store_true", help="print JSON instead of text")
    i.set_defaults(func=_cmd_info)


def _parser_validate(sub, kinds) -> None:
    v = sub.add_parser("validate", help="check a phigen file completely (exit 1 on any problem)")
    v.add_argument("file")
    v.add_argument("--json", metavar="PATH")
    v.set_defaults(func=_cmd_validate)


def _parser_stats(sub, kinds) -> None:
    s = sub.add_parser("stats", help="statistics suite, distances to a reference, figures")
    s.add_argument("file")
    s.add_argument("--ref", metavar="TRUTH", help="reference (truth) file to compare with")
    s.add_argument("--out", metavar="DIR", help="directory for the JSON and PNG figures")
    s.add_argument("--json", metavar="PATH", help="write all statistics and distances as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_stats)


def _parser_check(sub, kinds) -> None:
    ck = sub.add_parser("check", help="physics checks of a ground-truth file (those its field kind declares)")
    ck.add_argument("file")
    ck.add_argument("--out", metavar="DIR", help="directory for the figures")
    ck.add_argument("--json", metavar="PATH", help="write the checks as JSON")
    ck.add_argument("--max-fields", type=int, default=None, help="use the first N fields only")
    ck.set_defaults(func=_cmd_check)


def _parser_critical(sub, kinds) -> None:
    c = sub.add_parser("critical", help="κ_c from Binder-cumulant crossings")
    c.add_argument("model", help="phi4")
    c.add_argument("--lam", type=float, required=True, help="quartic coupling λ")
    c.add_argument("--size", type=int, nargs="+", required=True, help="lattice sizes, e.g. 16 32 64")
    c.add_argument("--kappa", required=True, help="START:STOP:NUM grid of κ")
    c.add_argument("--n-steps", type=int, default=2000, help="measurement steps per κ and L")
    c.add_argument("--n-chains", type=int, default=32)
    c.add_argument("--sampler", choices=["hmc-cluster", "hmc", "mala"], default="hmc-cluster")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", metavar="PATH", help="write kappa_c, kappa_c_err and the U4 curves")
    c.add_argument("--out", metavar="DIR", help="directory for critical.json and binder.png")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_critical)


def _parser_fit(sub, kinds) -> None:
    f = sub.add_parser("fit", help="fit a model on a phigen file")
    f.add_argument("model", help=" | ".join(kinds))
    f.add_argument("data", help="training data (phigen .h5)")
    f.add_argument("-o", "--output", required=True, help="model file (.h5)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--test-fraction", type=float, default=0.0,
                   help="hold out this fraction (deterministic split; default 0: fit on every field). A model "
                        "for `compare --model-file` must be fitted on compare's training split: the same "
                        "--test-fraction and --split-seed as compare's --test-fraction (default 0.5) and --seed "
                        "(default 0); compare refuses a model trained on its held-out fields")
    f.add_argument("--split-seed", type=int, default=0,
                   help="seed of the train/held-out split (compare's --seed)")
    f.add_argument("--max-fields", type=int, default=None)
    f.add_argument("--steps", type=int, help="training / optimisation steps")
    f.add_argument("--batch-size", type=int, help="training batch size")
    f.add_argument("--J", type=int, help="number of wavelet scales")
    f.add_argument("--L", type=int, help="number of wavelet orientations")
    f.add_argument("--mode", help="model variant (e.g. micro | maxent for scattering)")
    f.add_argument("--condition", metavar="NAME[,NAME]",
                   help="conditional models: fit on these columns of the file's conditions (e.g. kappa)")
    f.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other model option (repeatable)")
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=_cmd_fit)


def _parser_sample(sub, kinds) -> None:
    sp = sub.add_parser("sample", help="new fields from a fitted model into a phigen file")
    sp.add_argument("model_file")
    sp.add_argument("-n", "--count", type=int, required=True)
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--batch-size", type=int, default=64)
    sp.add_argument("--sampler", help="e.g. sde | ode for diffusion models")
    sp.add_argument("--nfe", type=int, help="network evaluations (sampling steps)")
    sp.add_argument("--condition", metavar="NAME=VALUE[,...]",
                    help="conditional models: the condition to sample at (e.g. kappa=0.33)")
    sp.add_argument("--from-coarse", metavar="LOWRES.h5",
                    help="super-resolution (wcrg, wsgm): start at these coarse fields (phigen coarse-grain makes them); "
                         "one sample per coarse field")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other sampling option (repeatable)")
    sp.add_argument("--resume", action="store_true")
    sp.add_argument("--overwrite", action="store_true")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=_cmd_sample)


def _parser_coarse_grain(sub, kinds) -> None:
    cg = sub.add_parser("coarse-grain", help="the wavelet low-pass of every field (input of sample --from-coarse)")
    cg.add_argument("data")
    cg.add_argument("--levels", type=int, required=True, help="DWT levels j: fields H×W become H/2^j × W/2^j")
    cg.add_argument("--wavelet", default="db4", help="the model's wavelet (default db4)")
    cg.add_argument("-o", "--output", required=True)
    cg.add_argument("--overwrite", action="store_true")
    cg.add_argument("--quiet", action="store_true")
    cg.set_defaults(func=_cmd_coarse_grain)


def _parser_compare(sub, kinds) -> None:
    cp = sub.add_parser("compare", help="fit, sample and judge models on one dataset; write a report")
    cp.add_argument("data", help="phigen .h5 file (split into training and held-out truth)")
    cp.add_argument("--models", default="gaussian", help="comma-separated model kinds among " + ", ".join(kinds))
    cp.add_argument("-o", "--output", required=True, help="report directory")
    cp.add_argument("--test-fraction", type=float, default=0.5, help="fraction held out as the truth")
    cp.add_argument("--seed", type=int, default=0, help="split, fit and sampling seed")
    cp.add_argument("--set-model", action="append", metavar="KIND.KEY=VALUE", help="fit option of one model (repeatable)")
    cp.add_argument("--set-sample", action="append", metavar="KIND.KEY=VALUE",
                    help="sampling option of one model (repeatable)")
    cp.add_argument("--model-file", action="append", metavar="KIND=PATH",
                    help="load this fitted model instead of fitting (refused if it was trained on a held-out field)")
    cp.add_argument("--condition", metavar="NAME[,NAME]",
                    help="judge conditional models per value of these conditions of the file (e.g. kappa)")
    cp.add_argument("--hold-out", metavar="VALUES",
                    help="with --condition: condition values kept out of the fit (e.g. 0.295,0.34; "
                         "several conditions: 0.3:0.8;0.35:0.9)")
    cp.add_argument("--n-splits", type=int, default=200,
                    help="random splits of the held-out truth for the null distribution of every distance (>= 20)")
    cp.add_argument("--quiet", action="store_true")
    cp.set_defaults(func=_cmd_compare)


def _parser_generalisation(sub, kinds) -> None:
    gz = sub.add_parser("generalisation",
                        help="two models on disjoint training sets, sampled with the same noise: memorise or generalise?")
    gz.add_argument("data", help="phigen .h5 file (needs 2N fields for the largest N)")
    gz.add_argument("--model", default="diffusion", help="model kind: " + " | ".join(kinds))
    gz.add_argument("--N", default="10,100,1000", metavar="N1,N2,...", help="training-set sizes (comma-separated)")
    gz.add_argument("-o", "--output", required=True, help="report directory")
    gz.add_argument("--n-samples", type=int, default=32, help="samples per model (same noise for both)")
    gz.add_argument("--seed", type=int, default=0, help="training-set draw and fit seed (sampling: seed + 1)")
    gz.add_argument("--set", action="append", metavar="KEY=VALUE", help="fit option (repeatable)")
    gz.add_argument("--sample-set", action="append", metavar="KEY=VALUE", help="sampling option (repeatable)")
    gz.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    gz.add_argument("--quiet", action="store_true")
    gz.set_defaults(func=_cmd_generalisation)


def _parser_quickstart(sub, kinds) -> None:
    q = sub.add_parser("quickstart", help="the built-in end-to-end run")
    q.add_argument("-o", "--output", default="phigen_quickstart", help="report directory")
    q.add_argument("--fast", action="store_true", help="CI size (32² fields, tiny budgets)")
    q.add_argument("--models", default=None,
                   help="comma-separated subset of the model kinds to run, in this order (default: all), "
                        "e.g. gaussian,wcrg")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_cmd_quickstart)


# one function per verb, in the order ``phigen --help`` lists them
_VERB_PARSERS = (_parser_generate, _parser_merge, _parser_info, _parser_validate, _parser_stats, _parser_check, _parser_critical,
                 _parser_fit, _parser_sample, _parser_coarse_grain, _parser_compare, _parser_generalisation, _parser_quickstart)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__

            print(f"phigen {__version__}")
            return 0
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except _UsageError as exc:
        print(f"phigen: error: {exc} (see 'phigen --help')", file=sys.stderr)
        return 2
    except E.PhigenError as exc:
        if debug:
            raise
        print(f"phigen: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader closed the pipe (``phigen info FILE | head``): not an error, nothing left to say.
        # Point stdout at /dev/null so that the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("phigen: error: interrupted (files written so far are consistent; rerun with --resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unexpected: still one line unless --debug
        if debug:
            raise
        print(f"phigen: error: internal error {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
