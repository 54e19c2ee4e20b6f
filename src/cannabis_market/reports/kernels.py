"""Warm kernels: each run's papermill process and kernel are started, and the heavy imports done, while
the previous run is still executing.

A **warm worker** is the same per-run subprocess ``execute._supervise`` would start (its own session, killed
as a group on timeout or Ctrl-C), started ahead of time: it imports papermill, starts the run's Jupyter
kernel and runs the warm-up code in it (``import polars, statsmodels, altair, ...`` and the package's
analysis modules; silently, so the notebook's execution counts still start at 1), writes a ``ready`` file
and waits for a job on its stdin. When a run starts, its supervisor hands the job to a ready worker
(``take``): the worker sets the run's environment variables and working folder in its kernel and runs
papermill against that kernel (nbclient's ``km=``); the notebook is an ordinary notebook executed by
papermill/nbclient, it just finds its imports already done.

* **No state shared between runs.** A worker and its kernel run exactly one notebook, then exit; the pool
  only ever holds kernels that have run nothing but the warm-up code.
* **Falls back cleanly.** A worker that fails to start or warm its kernel is killed and the run starts
  cold (the plain path); a kernel that died before the job arrived is replaced by a cold kernel inside
  the worker.
* **Nothing left behind.** The supervisor kills the run's kernel after the run (the kernel has its own
  session, so killing the worker's group does not reach it); ``WarmPool.close`` stops every idle worker
  and its kernel at the end of a build.

* **Forked, not started (Linux/macOS).** By default the pool first starts one ``forkserver`` process that
  does the imports once; every warm worker and its kernel are then forks of it (a kernel manager whose
  provisioner asks the server), so a run costs a fork instead of ~4 s of imports, and the runs share those
  pages copy-on-write. A forked worker also renders its run's page (``worker.prerender``).
  ``CM_REPORT_FORK=0`` (or a server that fails to start) gives the subprocess workers described above.

Only ``build.run_reports`` with a local executor opens a pool, for the runs of its plan; elsewhere (Dask
workers, a direct ``execute_run``, another build in the same process) ``take`` returns None: runs are cold. ``--no-warm`` or ``CM_REPORT_WARM=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cannabis_market.reports import forkserver
from cannabis_market.reports.forkserver import pid_alive  # noqa: F401 - re-exported

WARM_ENV = "CM_REPORT_WARM"  # "0"/"false"/"no"/"off": run every notebook in a cold kernel
SPARES_ENV = "CM_REPORT_WARM_SPARES"  # idle warm kernels kept ahead (default 1; each holds ~400 MB)
READY_TIMEOUT = 120.0
FORKED_ENTRY = "cannabis_market.reports.kernels:_forked_worker"  # what a forked worker runs  # seconds a run waits for its warm worker before starting cold
WARM_MODULES = (
    "numpy",
    "scipy.stats",
    "scipy.optimize",
    "pandas",
    "pyarrow",
    "polars",
    "statsmodels.api",
    "altair",
    "cannabis_market.data.loader",
    "cannabis_market.analysis",
    "cannabis_market.reports.nb",
)


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextmanager
def thread_limits(jobs: int) -> Iterator[dict[str, str]]:
    """While a build runs ``jobs`` kernels at once here (0: runs are elsewhere, nothing is set): each kernel's BLAS gets cores // jobs threads (at least
    one), unless the variable is set already. OpenBLAS threads spin while they wait, so two kernels each
    running two BLAS threads on two cores are slowed many times over (measured on a loaded machine: the
    FE fits of notebook 04's event studies took 22.7 s instead of 1.9 s with one BLAS thread). Set in this process's environment, which
    every worker, kernel and the fork server inherit; restored afterwards."""
    per_run = str(max(1, usable_cores() // max(1, jobs)))
    added = {name: per_run for name in BLAS_THREADS if name not in os.environ} if jobs > 0 else {}
    os.environ.update(added)
    try:
        yield added
    finally:
        for name in added:
            os.environ.pop(name, None)


def warm_code(modules: Sequence[str] = WARM_MODULES) -> str:
    """Code run silently in a fresh kernel: import ``modules`` (each best effort) and every submodule
    of ``cannabis_market.analysis``; it defines no names in the notebook's namespace."""
    return (
        "def _cm_warm(names):\n"
        "    import importlib, pkgutil\n"
        "    for name in names:\n"
        "        try:\n"
        "            mod = importlib.import_module(name)\n"
        "        except Exception:\n"
        "            continue\n"
        "        if name == 'cannabis_market.analysis':\n"
        "            for info in pkgutil.iter_modules(mod.__path__, name + '.'):\n"
        "                try:\n"
        "                    importlib.import_module(info.name)\n"
        "                except Exception:\n"
        "                    pass\n"
        f"_cm_warm({list(modules)!r})\n"
        "del _cm_warm\n"
    )


def enabled(flag: bool | None = None) -> bool:
    """Whether runs use warm kernels: ``flag`` when given, else ``CM_REPORT_WARM`` (default on)."""
    if flag is not None:
        return bool(flag)
    return os.environ.get(WARM_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


# ------------------------------------------------------------------------------------------ pool side


def _kill_kernel(pid: int | None) -> None:
    """SIGKILL a kernel's process group (its own session: pgid == pid), if it is still that group."""
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)


def _pid_path(ready_path: Path) -> Path:
    return ready_path.with_suffix(".pid")


class Warm:
    """One warm worker: a subprocess holding a warmed kernel, waiting for its job on stdin."""

    def __init__(self, proc: subprocess.Popen, ready_path: Path, kernel_name: str) -> None:
        self.proc = proc
        self.ready_path = ready_path
        self.kernel_name = kernel_name
        self.kernel_pid: int | None = None

    def wait_ready(self, timeout: float, cancel: threading.Event | None = None) -> bool:
        """Block until the worker has warmed its kernel (True) or failed/died/timed out (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_path.exists():
                try:
                    ready = json.loads(self.ready_path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    ready = {}
                self.kernel_pid = ready.get("kernel_pid")
                return bool(ready.get("ok")) and self.proc.poll() is None
            if self.proc.poll() is not None or (cancel is not None and cancel.is_set()):
                return False
            time.sleep(0.02)
        return False

    def hand_over(self, job_file: Path) -> subprocess.Popen | None:
        """Give the worker its job; the worker process (None when it died before taking it)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(f"{job_file}\n".encode())
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            self.kill()
            return None
        return self.proc

    def reap(self) -> None:
        """After the run: make sure its kernel is gone (the worker normally stops it itself)."""
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5.0)
        self.kill()

    def stop(self) -> None:
        """Idle worker: ask it to exit (EOF on stdin: it stops its kernel)."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def kill(self) -> None:
        """Kill the worker's process group and its kernel."""
        from cannabis_market.reports.worker import _kill_group

        if self.proc.poll() is None:
            _kill_group(self.proc)
        if self.kernel_pid is None:  # written by the worker as soon as its kernel started
            with contextlib.suppress(OSError, ValueError):
                self.kernel_pid = int(_pid_path(self.ready_path).read_text(encoding="ascii"))
        _kill_kernel(self.kernel_pid)
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()


class WarmPool:
    """Warm workers for the runs of one build, started ``size`` ahead in the order the runs will start.

    ``upcoming`` lists the kernel name (and working folder) of every run in plan order; ``size`` (the
    build's ``--jobs``) workers are started at once, then each ``take`` starts the next run's worker when
    fewer than ``spares`` (``CM_REPORT_WARM_SPARES``, default 1) are idle, so at most ``jobs`` running
    + ``spares`` idle kernels exist and none is started for a run that will never come.
    """

    def __init__(
        self,
        upcoming: Sequence[tuple[str, str]],
        size: int,
        *,
        code: str | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.size = max(1, int(size))
        try:
            self.spares = max(0, int(os.environ.get(SPARES_ENV, "1")))
        except ValueError:
            self.spares = 1
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="cm-warm-"))
        self.code_path = self.dir / "warm.py"
        self.code_path.write_text(code if code is not None else warm_code(), encoding="utf-8")
        self._upcoming = list(upcoming)
        self._next = 0
        self._idle: list[Warm] = []
        self._all: list[Warm] = []
        self._lock = threading.Lock()
        self._closed = False
        self._count = 0

        self.server = (
            forkserver.ForkServer(self.code_path.read_text(encoding="utf-8"))
            if forkserver.available()
            else None
        )
        with self._lock:
            for _ in range(min(self.size, len(self._upcoming))):
                self._spawn_next()

    @property
    def kernel_pids(self) -> list[int]:
        """Kernel processes this pool started (for checks that none is left running)."""
        return [w.kernel_pid for w in self._all if w.kernel_pid]

    def _spawn(self, kernel_name: str, cwd: str) -> Warm:
        self._count += 1
        n = self._count
        ready, log = self.dir / f"w{n}.ready", self.dir / f"w{n}.log"
        args = [str(ready), kernel_name, cwd, str(self.code_path)]
        if self.server is not None and self.server.wait_ready():
            try:
                forked = self.server.spawn_worker(FORKED_ENTRY, args, cwd, log, self.dir / f"w{n}.job")
            except (OSError, RuntimeError, ValueError):
                forked = None  # the server went away: a subprocess worker instead
            if forked is not None:
                warm = Warm(forked, ready, kernel_name)  # type: ignore[arg-type] - Popen-like
                self._all.append(warm)
                return warm
        env = dict(os.environ)
        env["CM_REPORT"] = "1"
        code = "from cannabis_market.reports.kernels import _warm_main; _warm_main()"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        warm = Warm(proc, ready, kernel_name)
        self._all.append(warm)
        return warm

    def _spawn_next(self) -> None:
        if self._next < len(self._upcoming):
            self._idle.append(self._spawn(*self._upcoming[self._next]))
            self._next += 1

    def take(self, kernel_name: str, cwd: str, cancel: threading.Event | None = None) -> Warm | None:
        """A ready warm worker for a run on ``kernel_name``; None to run cold (pool closed, warming failed)."""
        with self._lock:
            if self._closed:
                return None
            warm = next((w for w in self._idle if w.kernel_name == kernel_name), None)
            if warm is not None:
                self._idle.remove(warm)
            else:
                warm = self._spawn(kernel_name, cwd)
            if len(self._idle) < self.spares:
                self._spawn_next()
        if warm.wait_ready(self.ready_timeout, cancel):
            return warm
        warm.kill()
        return None

    def close(self) -> None:
        """Stop every idle worker and its kernel; kill whatever does not exit promptly."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.stop()
        deadline = time.monotonic() + 5.0
        for w in idle:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for w in idle:
            w.kill()
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_ACTIVE: dict[tuple[str, str, str], WarmPool] = {}  # run (out_root, report, slug) -> its build's pool


def _key(spec: Any) -> tuple[str, str, str]:
    return (str(spec.out_root), spec.report, spec.slug)


def take(spec: Any) -> Warm | None:
    """The warm worker for one run (``RunSpec``), or None when no open pool was made for this run (another
    build in the same process, a Dask worker, a direct ``execute_run``)."""
    pool = _ACTIVE.get(_key(spec))
    if pool is None:
        return None
    from cannabis_market.reports.worker import CANCEL

    return pool.take(spec.kernel_name, spec.cwd, CANCEL)


@contextmanager
def warm_pool(
    specs: Sequence[Any], jobs: int, *, warm: bool | None = None, code: str | None = None
) -> Iterator[WarmPool | None]:
    """Open the process's pool for a build of ``specs`` run ``jobs`` at a time (``jobs`` 0: none, e.g.
    a Dask executor), close it, and its kernels, at the end."""
    keys = [_key(s) for s in specs]
    if not specs or jobs < 1 or not enabled(warm) or any(k in _ACTIVE for k in keys):
        yield None
        return
    pool = WarmPool([(s.kernel_name, s.cwd) for s in specs], jobs, code=code)
    _ACTIVE.update(dict.fromkeys(keys, pool))
    try:
        yield pool
    finally:
        for k in keys:
            _ACTIVE.pop(k, None)
        pool.close()


# ---------------------------------------------------------------------------------------- worker side


async def _execute_quietly(km: Any, code: str, timeout: float) -> None:
    kc = km.client()  # as nbclient does: liveness from the manager, not the heartbeat (late under load)
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=timeout)
        reply = await kc.execute_interactive(
            code, silent=True, store_history=False, allow_stdin=False, timeout=timeout
        )
    finally:
        kc.stop_channels()
    content = reply.get("content", {})
    if content.get("status") != "ok":
        raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')}")


def _run_silently(km: Any, code: str, timeout: float) -> None:
    """Run ``code`` in the kernel without output or history; RuntimeError when it raised."""
    from jupyter_core.utils import run_sync

    run_sync(_execute_quietly)(km, code, timeout)


def _job_setup_code(job: dict[str, Any]) -> str:
    """Give the warm kernel what a cold one gets at start: the run's environment variables and folder."""
    return (
        "import os as _cm_os\n"
        f"_cm_os.environ.update({dict(job.get('env') or {})!r})\n"
        f"_cm_os.chdir({str(job['cwd'])!r})\n"
        "del _cm_os\n"
    )


def _stop_kernel(km: Any) -> None:
    if km is None:
        return
    from jupyter_core.utils import run_sync

    with contextlib.suppress(Exception):
        run_sync(km.shutdown_kernel)(now=True)


def _warm_main() -> None:
    """Entry point of a warm worker started as a subprocess (see the module docstring). Not a public API."""
    from cannabis_market.reports import worker

    worker._prepare_worker()
    _warm_worker(sys.argv[1:5], lambda: sys.stdin.readline().strip())


def _forked_worker(args: list[str], mailbox: Path) -> int:
    """Entry point of a warm worker forked by ``forkserver`` (its job comes through ``mailbox``)."""
    from cannabis_market.reports import worker
    from cannabis_market.reports.forkserver import Mailbox

    worker._prepare_worker()
    parent = os.getppid()
    try:
        _warm_worker(args, lambda: Mailbox.receive(mailbox, parent), fork=True)
    except SystemExit as exc:  # run_job exits with the run's status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _warm_worker(args: list[str], read_job: Any, fork: bool = False) -> None:
    """Start and warm the kernel, wait for the job (``read_job()``: a job file path, '' to stop), run it."""
    from jupyter_core.utils import run_sync

    from cannabis_market.reports import worker
    from cannabis_market.reports.results import write_json_atomic

    ready_arg, kernel_name, cwd, code_arg = args
    ready_path, code_path = Path(ready_arg), Path(code_arg)
    km = None
    try:  # whatever happens (SIGTERM from the pool included), the kernel is stopped on the way out
        ready: dict[str, Any] = {"ok": True}
        try:
            import papermill  # noqa: F401 - imported now so the run does not wait for it
            from jupyter_client.manager import AsyncKernelManager

            km = AsyncKernelManager(kernel_name=kernel_name)
            if fork:
                from cannabis_market.reports.forkserver import use_fork_provisioner

                use_fork_provisioner(km)
            run_sync(km.start_kernel)(cwd=cwd)
            ready["kernel_pid"] = getattr(km.provisioner, "pid", None)
            _pid_path(ready_path).write_text(str(ready["kernel_pid"] or ""), encoding="ascii")
            _run_silently(km, code_path.read_text(encoding="utf-8"), READY_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - reported in the ready file; the run then starts cold
            ready = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "kernel_pid": ready.get("kernel_pid"),
            }
            _stop_kernel(km)
            km = None
        write_json_atomic(ready_path, ready)
        line = read_job()
        if not line:
            return  # the pool closed
        job = json.loads(Path(line).read_text(encoding="utf-8"))
        log = os.open(job["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ.update(job.get("env") or {})
        if km is not None:
            try:
                if not run_sync(km.is_alive)():
                    raise RuntimeError("it died while waiting")
                _run_silently(km, _job_setup_code(job), 10.0)
            except Exception as exc:  # noqa: BLE001 - papermill starts a fresh (cold) kernel instead
                print(f"warm kernel unusable ({type(exc).__name__}: {exc}); starting a cold one", flush=True)
                _stop_kernel(km)
                km = None
        worker.run_job(job, km=km)
    finally:
        _stop_kernel(km)
