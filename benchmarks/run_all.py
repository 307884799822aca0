"""Run every benchmark script in ``benchmarks/`` and write ONE Markdown summary of their ratios.

Each other ``*.py`` file of the benchmarks directory (discovered, so new scripts are picked up; files
starting with ``_`` and this script are skipped) runs as a subprocess, from the repository root, as

    python SCRIPT [QUICK_FLAG] [extra args] --json TMPDIR/SCRIPT.json

``--size quick`` adds the script's own smoke-run flag (the first of ``--quick``, ``--fast``,
``--smoke`` that its argument parser declares, read from its source; a script without one runs as
is); ``--size full`` adds nothing. Every script gets a wall-clock limit (``--timeout``; its whole
process group is killed past it). The summary (``--out``, default ``benchmark_results.md``) holds
the machine (CPU model, cores, memory, load average before and after, JAX version and devices), the
date, each script's exit status and wall time, then its ``ratios`` and ``figures`` (the benchmark
JSON contract, docs/benchmarks.md; other numeric results are flattened into a folded table). A failing or
timed-out script is recorded with the tail of its stderr, never fatal (``--strict`` makes the exit
status 1 when any failed). ``--json PATH`` writes everything as JSON as well.

Usage: ``python benchmarks/run_all.py [--size quick|full] [--only a,b] [--skip c] [--timeout S]
[--args NAME="--sizes 32"] [--out benchmark_results.md] [--json PATH] [--strict]``
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_FLAGS = ("--quick", "--fast", "--smoke")
DEFAULT_TIMEOUT = {"quick": 1800.0, "full": 4 * 3600.0}
_MAX_FLAT_ROWS = 80  # rows of flattened non-contract results shown per script (all are in the JSON)


class UsageError(Exception):
    pass


# --- discovery ----------------------------------------------------------------------------------
def discover(bench_dir) -> dict[str, Path]:
    """``{name: path}`` of the benchmark scripts in ``bench_dir`` (sorted by name)."""
    bench_dir = Path(bench_dir)
    return {p.stem: p for p in sorted(bench_dir.glob("*.py"))
            if not p.name.startswith("_") and p.name != Path(__file__).name}


def quick_flag(path) -> str | None:
    """The smoke-run flag a script's argparse declares (``add_argument("--quick", ...)``), or None."""
    text = Path(path).read_text(errors="replace")
    for flag in QUICK_FLAGS:
        if re.search(r"add_argument\(\s*['\"]" + re.escape(flag) + r"['\"]", text):
            return flag
    return None


def select(names, only=None, skip=None) -> list[str]:
    """Apply ``--only`` / ``--skip`` (comma-separated names, with or without ``.py``)."""
    def parse(s):
        return [n.strip().removesuffix(".py") for n in (s or "").split(",") if n.strip()]

    only, skip = parse(only), parse(skip)
    unknown = sorted(set(only + skip) - set(names))
    if unknown:
        raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names) or 'none'}")
    chosen = [n for n in names if (not only or n in only) and n not in skip]
    if not chosen:
        raise UsageError("no benchmark left to run after --only/--skip")
    return chosen


# --- machine ------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2 ** 20
    except (OSError, ValueError):
        pass
    return None


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _jax_info(python: str, timeout: float = 120.0) -> dict:
    """JAX version and devices, asked of a fresh interpreter (the driver itself never imports jax)."""
    code = ("import json, jax, jaxlib, numpy; print(json.dumps({'jax': jax.__version__, "
            "'jaxlib': jaxlib.__version__, 'numpy': numpy.__version__, 'backend': jax.default_backend(), "
            "'devices': [str(d) for d in jax.devices()]}))")
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"jax_error": r.stderr[-300:]}
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError) as exc:
        return {"jax_error": f"{type(exc).__name__}: {exc}"}


def _git_commit(root: Path) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return r.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def machine_info(python: str, root: Path) -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": affinity,
            "memory_gib": _memory_gib(), "platform": platform.platform(), "python": platform.python_version(),
            **_jax_info(python), "xla_flags": os.environ.get("XLA_FLAGS", ""), "git_commit": _git_commit(root)}


# --- running ------------------------------------------------------------------------------------
def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_script(name: str, path: Path, *, size: str, json_dir: Path, timeout: float, python: str, cwd: Path,
               extra: list[str] | None = None) -> dict:
    """Run one benchmark script; returns its record (status, exit code, wall time, parsed JSON)."""
    flag = quick_flag(path) if size == "quick" else None
    json_path = json_dir / f"{name}.json"
    cmd = [python, str(path)] + ([flag] if flag else []) + list(extra or []) + ["--json", str(json_path)]
    out_log, err_log = json_dir / f"{name}.stdout.txt", json_dir / f"{name}.stderr.txt"
    shown = (["python" if python == sys.executable else python, os.path.relpath(path, cwd)] + cmd[2:-1]
             + [f"<json>/{name}.json"])
    rec = {"name": name, "script": str(path), "command": " ".join(shlex.quote(c) for c in shown),
           "quick_flag": flag, "timeout_s": timeout, "load_before": _load()}
    t0 = time.perf_counter()
    with open(out_log, "wb") as so, open(err_log, "wb") as se:
        # a session of its own, so a timeout kills the script AND anything it started
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=so, stderr=se, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.wait()
    rec.update(wall_s=time.perf_counter() - t0, returncode=rc, load_after=_load())
    rec["stdout_tail"], rec["stderr_tail"] = _tail(out_log), _tail(err_log)
    data = None
    if json_path.exists():
        try:
            data = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            rec["json_error"] = f"unreadable JSON: {exc}"
    if timed_out:
        rec["status"] = f"timeout after {timeout:g} s"
    elif rc != 0:
        rec["status"] = f"failed (exit {rc})"
    elif not isinstance(data, dict):
        rec["status"] = "failed (no JSON written)" if data is None else "failed (JSON is not an object)"
    else:
        rec["status"] = "ok"
    rec["ok"] = rec["status"] == "ok"
    if isinstance(data, dict):
        rec["ratios"] = data.get("ratios") if isinstance(data.get("ratios"), dict) else {}
        rec["figures"] = data.get("figures") if isinstance(data.get("figures"), dict) else {}
        rec["machine"] = data.get("machine")
        # scripts outside the contract (e.g. {"results": [...]}): keep their numbers, flattened
        rec["other"] = _flatten({k: v for k, v in data.items() if k not in ("ratios", "figures", "machine")})
    return rec


# --- summary ------------------------------------------------------------------------------------
def _flatten(obj, prefix: str = "") -> dict:
    """Numeric leaves of nested dicts/lists as ``{"a.b[0].c": value}`` (strings and None dropped)."""
    out: dict = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
    elif isinstance(obj, bool):
        out[prefix] = obj
    elif isinstance(obj, (int, float)):
        out[prefix] = obj
    return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return (text[:117] + "…") if len(text) > 120 else text
    return str(v)


def _fmt2(v) -> str:
    return "?" if v is None else f"{v:.2f}"


def _cell(v) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def _machine_line(m: dict) -> list[str]:
    mem = f", {m['memory_gib']:.0f} GiB RAM" if m.get("memory_gib") else ""
    usable = f" ({m['cpus_usable']} usable)" if m.get("cpus_usable") not in (None, m.get("cpu_count")) else ""
    lines = [f"- CPU: {m.get('cpu_model')}, {m.get('cpu_count')} logical cores{usable}{mem}",
             f"- {m.get('platform')}, Python {m.get('python')}"]
    if "jax" in m:
        lines.append(f"- JAX {m['jax']} (jaxlib {m.get('jaxlib')}), numpy {m.get('numpy')}, backend "
                     f"{m.get('backend')}, devices: {', '.join(m.get('devices') or [])}")
    else:
        lines.append(f"- JAX: not importable ({m.get('jax_error')})")
    if m.get("xla_flags"):
        lines.append(f"- XLA_FLAGS={m['xla_flags']}")
    if m.get("git_commit"):
        lines.append(f"- phigen commit {m['git_commit']}")
    return lines


def summary_markdown(report: dict) -> str:
    """The one Markdown summary of a :func:`run_all` report."""
    m = report["machine"]
    lb, la = report.get("load_before"), report.get("load_after")
    load = ("" if lb is None else f"1-minute load average {lb:.2f} before, {la:.2f} after the run "
            "(other jobs on the machine inflate wall times; ratios measured within one script are more robust)")
    lines = [f"# phigen benchmarks ({report['size']} size)", "",
             f"Run {report['date']} with `{report['command']}`; total wall time {report['wall_s']:.0f} s.", ""]
    lines += _machine_line(m) + ([f"- {load}"] if load else []) + [""]
    lines += ["| script | status | wall time (s) | flags | ratios |", "|---|---|---|---|---|"]
    for r in report["scripts"]:
        flags = " ".join(f for f in [r.get("quick_flag")] + r.get("extra_args", []) if f) or "—"
        lines.append(f"| {r['name']} | {r['status']} | {r['wall_s']:.1f} | `{flags}` | {len(r.get('ratios') or {})} |")
    lines.append("")
    for r in report["scripts"]:
        lines += [f"## {r['name']}", "", f"Status **{r['status']}**, {r['wall_s']:.1f} s wall "
                  f"(load {_fmt2(r.get('load_before'))} → {_fmt2(r.get('load_after'))}); `{r['command']}`", ""]
        if not r["ok"]:
            tail = r.get("stderr_tail") or r.get("stdout_tail") or "(no output)"
            lines += ["Last lines of its output:", "", "```", tail, "```", ""]
        if r.get("ratios"):
            lines += ["| ratio | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in r["ratios"].items()]
            lines.append("")
        figures = {k: v for k, v in (r.get("figures") or {}).items()}
        if figures:
            lines += ["<details><summary>figures (machine-dependent)</summary>", "", "| figure | value |",
                      "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in figures.items()]
            lines += ["", "</details>", ""]
        other = r.get("other") or {}
        if other:
            shown = list(other.items())[:_MAX_FLAT_ROWS]
            more = len(other) - len(shown)
            lines += ["<details><summary>results (outside the ratios/figures contract)</summary>", "",
                      "| result | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in shown]
            if more:
                lines.append(f"| … {more} more in the JSON | |")
            lines += ["", "</details>", ""]
        sm = r.get("machine")
        if isinstance(sm, dict) and sm:
            lines += [f"Machine as the script saw it: {_cell(sm)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def run_all(*, bench_dir=HERE, size: str = "quick", only=None, skip=None, timeout: float | None = None,
            extra_args: dict | None = None, out="benchmark_results.md", json_path=None, python: str = sys.executable,
            cwd=None, keep_dir=None, command: str | None = None, progress=print) -> dict:
    """Run the selected benchmark scripts one after the other; write the summary (and JSON). Returns
    the report dict (``scripts``: one record per script, in run order)."""
    if size not in DEFAULT_TIMEOUT:
        raise UsageError(f"--size must be quick or full; got {size!r}")
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise UsageError(f"no benchmarks directory {bench_dir}")
    scripts = discover(bench_dir)
    names = select(list(scripts), only, skip)
    extra_args = dict(extra_args or {})
    unknown = sorted(set(extra_args) - set(scripts))
    if unknown:
        raise UsageError(f"--args given for unknown benchmark(s) {', '.join(unknown)}")
    timeout = float(timeout if timeout is not None else DEFAULT_TIMEOUT[size])
    if not timeout > 0:
        raise UsageError(f"--timeout must be positive; got {timeout}")
    cwd = Path(cwd) if cwd is not None else bench_dir.resolve().parent
    started = _dt.datetime.now().astimezone()
    report = {"size": size, "date": started.isoformat(timespec="seconds"),
              "command": command or f"run_all(size={size!r}, only={only!r}, skip={skip!r})",
              "bench_dir": str(bench_dir), "timeout_s": timeout, "load_before": _load(),
              "machine": machine_info(python, cwd), "scripts": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="phigen_bench_") as tmp:
        json_dir = Path(keep_dir) if keep_dir else Path(tmp)
        json_dir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names, 1):
            extra = shlex.split(extra_args.get(name, ""))
            if progress:
                progress(f"[{i}/{len(names)}] {name} ...")
            rec = run_script(name, scripts[name], size=size, json_dir=json_dir, timeout=timeout, python=python,
                             cwd=cwd, extra=extra)
            rec["extra_args"] = extra
            report["scripts"].append(rec)
            if progress:
                progress(f"[{i}/{len(names)}] {name}: {rec['status']} in {rec['wall_s']:.1f} s")
    report["wall_s"] = time.perf_counter() - t0
    report["load_after"] = _load()
    report["n_failed"] = sum(not r["ok"] for r in report["scripts"])
    text = summary_markdown(report)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        report["summary"] = str(out)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def _parse_extra(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--args expects NAME=ARGS; got {item!r}")
        name, rest = item.split("=", 1)
        out[name.strip().removesuffix(".py")] = rest
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["quick", "full"], default="quick",
                    help="quick: each script's own smoke-run flag; full: the scripts' defaults")
    ap.add_argument("--only", metavar="A,B", help="run only these scripts (names without .py)")
    ap.add_argument("--skip", metavar="A,B", help="do not run these scripts")
    ap.add_argument("--timeout", type=float, default=None,
                    help=f"per-script wall-clock limit in s (default {DEFAULT_TIMEOUT['quick']:g} quick, "
                         f"{DEFAULT_TIMEOUT['full']:g} full)")
    ap.add_argument("--args", action="append", metavar="NAME=ARGS", help="extra arguments for one script (repeatable)")
    ap.add_argument("--out", default="benchmark_results.md", help="the Markdown summary")
    ap.add_argument("--json", metavar="PATH", help="also write everything as JSON")
    ap.add_argument("--keep-dir", metavar="DIR", help="keep each script's JSON and logs here (default: a temp dir)")
    ap.add_argument("--bench-dir", default=str(HERE), help=argparse.SUPPRESS)
    ap.add_argument("--strict", action="store_true", help="exit status 1 when any script failed")
    args = ap.parse_args(argv)
    try:
        report = run_all(bench_dir=args.bench_dir, size=args.size, only=args.only, skip=args.skip,
                         timeout=args.timeout, extra_args=_parse_extra(args.args), out=args.out,
                         json_path=args.json, keep_dir=args.keep_dir,
                         command=" ".join(["python benchmarks/run_all.py"] + [shlex.quote(a) for a in (
                             sys.argv[1:] if argv is None else argv)]),
                         progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except UsageError as exc:
        print(f"run_all: error: {exc}", file=sys.stderr)
        return 2
    n = len(report["scripts"])
    print(f"{n - report['n_failed']} of {n} benchmarks ok; summary: {report['summary']}"
          + (f", JSON: {args.json}" if args.json else ""))
    return 1 if args.strict and report["n_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
