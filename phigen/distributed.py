"""Several processes, one job: ``jax.distributed`` on one machine or on a cluster (docs/scale_out.md).

JAX's multi-controller runtime does the work: every process runs the same program, joins the group
with :func:`jax.distributed.initialize` (which detects Slurm and Open MPI by itself), and the
processes' devices form one global device list for ``jax.sharding`` meshes. phigen adds:

- :func:`initialize`: join the group from explicit arguments, from the ``PHIGEN_COORDINATOR`` /
  ``PHIGEN_NUM_PROCESSES`` / ``PHIGEN_PROCESS_ID`` environment that :func:`launch_local` sets, or
  by JAX's cluster detection; CPU processes exchange collectives through gloo;
- :func:`launch_local`: start N processes on this machine on the loopback address and wait for them
  (a process that fails stops the others; its one-line error is raised here);
- :func:`barrier`, :func:`process_info`, :func:`is_main_process`.

Nothing here runs at import and no JAX setting is changed until :func:`initialize` is called.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import errors as E

__all__ = ["initialize", "process_info", "is_main_process", "barrier", "launch_local", "launch_generate",
           "free_port", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID"]

ENV_COORDINATOR = "PHIGEN_COORDINATOR"
ENV_NUM_PROCESSES = "PHIGEN_NUM_PROCESSES"
ENV_PROCESS_ID = "PHIGEN_PROCESS_ID"
_ENV_ERROR_FILE = "PHIGEN_ERROR_FILE"


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids=None, timeout: int = 300) -> tuple[int, int]:
    """Join the process group (no-op if this process already joined); returns ``(index, count)``.

    Arguments left out come from the ``PHIGEN_*`` environment set by :func:`launch_local`, else
    from JAX's cluster detection (Slurm, Open MPI; on GPUs one device per process). Must run before
    any JAX computation in the process.
    """
    import jax

    if jax.distributed.is_initialized():
        return process_info()
    env = os.environ
    if coordinator_address is None and ENV_COORDINATOR in env:
        coordinator_address = env[ENV_COORDINATOR]
        num_processes = int(env[ENV_NUM_PROCESSES]) if num_processes is None else num_processes
        process_id = int(env[ENV_PROCESS_ID]) if process_id is None else process_id
    try:  # CPU devices of different processes talk through gloo (jax's default today; said explicitly)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # pragma: no cover - older or newer jax without the option
        pass
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   local_device_ids=local_device_ids, initialization_timeout=int(timeout))
    except (RuntimeError, ValueError) as exc:
        raise E.PhigenError(f"cannot join the process group (jax.distributed.initialize: {exc}); outside Slurm or "
                            "Open MPI give the coordinator address, the number of processes and this process's id"
                            ) from None
    return process_info()


def process_info() -> tuple[int, int]:
    """``(jax.process_index(), jax.process_count())``: ``(0, 1)`` in a process that joined no group."""
    import jax

    return int(jax.process_index()), int(jax.process_count())


def is_main_process() -> bool:
    """True on process 0 (the one that writes files meant once per job, e.g. a model file)."""
    return process_info()[0] == 0


def barrier(name: str) -> None:
    """Wait until every process of the group reaches ``barrier(name)`` (no-op in a single process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def free_port() -> int:
    """A TCP port free on the loopback address now (for the coordinator of a local group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_local(n_processes: int, call: dict, *, progress: bool | None = None, timeout: float | None = None) -> None:
    """Run ``call`` (a JSON-able job, see :func:`_run_call`) in ``n_processes`` new processes on this
    machine, joined by ``jax.distributed`` on ``127.0.0.1``; returns when all have finished.

    Process 0 shows its progress (``progress``); the others are quiet. When one process fails the
    others are stopped and its one-line error is raised as a :class:`phigen.PhigenError`.
    """
    from ._validation import check_int_at_least

    n = check_int_at_least(n_processes, "processes", 1)
    coordinator = f"127.0.0.1:{free_port()}"
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="phigen-launch-") as tmp:
        logs = []
        try:
            for k in range(n):
                env = dict(os.environ)
                env.update({ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(n), ENV_PROCESS_ID: str(k),
                            _ENV_ERROR_FILE: str(Path(tmp) / f"error-{k}.txt")})
                job = {**call, "progress": bool(progress) if k == 0 else False}
                log = open(Path(tmp) / f"stderr-{k}.txt", "wb")
                logs.append(log)
                procs.append(subprocess.Popen([sys.executable, "-m", "phigen.distributed", json.dumps(job)],
                                              env=env, stdout=subprocess.DEVNULL,
                                              stderr=None if (k == 0 and progress) else log))
            start = time.monotonic()
            while True:
                codes = [p.poll() for p in procs]
                failed = [k for k, c in enumerate(codes) if c not in (None, 0)]
                if failed or all(c == 0 for c in codes):
                    break
                if timeout is not None and time.monotonic() - start > timeout:
                    raise E.PhigenError(f"the {n} processes did not finish within {timeout:g} s")
                time.sleep(0.05)
        except BaseException:
            _stop(procs)
            raise
        finally:
            for log in logs:
                log.close()
        if failed:
            _stop(procs)
            k = failed[0]
            raise E.PhigenError(f"process {k} of {n} failed: {_error_of(Path(tmp), k)}")


def _stop(procs) -> None:
    """Stop the processes this launcher started (each by its own handle), then reap them."""
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def _error_of(tmp: Path, k: int) -> str:
    err = tmp / f"error-{k}.txt"
    if err.exists() and err.read_text().strip():
        return _one_line(err.read_text())
    log = tmp / f"stderr-{k}.txt"
    lines = [ln for ln in (log.read_text(errors="replace").splitlines() if log.exists() else []) if ln.strip()]
    return _one_line(lines[-1]) if lines else "it exited without a message"


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + " …"


def launch_generate(processes: int, kind: str, path, **kwargs: Any) -> Path:
    """:func:`phigen.generate` in ``processes`` local processes (shards + master at ``path``)."""
    progress = kwargs.pop("progress", None)
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    launch_local(processes, {"fn": "generate", "kind": kind, "path": str(path), "kwargs": kwargs},
                 progress=bool(progress) if progress is not None else sys.stderr.isatty())
    return Path(path)


def _run_call(job: dict) -> None:
    """One process's part of a job that :func:`launch_local` started."""
    initialize()
    index, count = process_info()
    if job["fn"] == "generate":
        from .generators import generate_share

        generate_share(job["kind"], job["path"], process_index=index, process_count=count,
                       progress=job.get("progress", False), **job["kwargs"])
    else:
        raise E.ParameterError(f"unknown distributed job {job['fn']!r}")


def _worker(argv) -> int:
    try:
        _run_call(json.loads(argv[0]))
    except BaseException as exc:  # report one line, then leave at once: the others are stopped by the launcher
        msg = str(exc) if isinstance(exc, E.PhigenError) else f"internal error {type(exc).__name__}: {exc}"
        err = os.environ.get(_ENV_ERROR_FILE)
        if err:
            Path(err).write_text(msg + "\n")
        print(f"phigen: error: {msg}", file=sys.stderr, flush=True)
        os._exit(1)  # no atexit: jax's shutdown would wait for the processes still running
    import jax

    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
