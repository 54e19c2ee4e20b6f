"""A fork server for report runs: the heavy imports are done once per build, every run's worker and
kernel are forked from that one warmed process.

Starting a Jupyter kernel costs ~0.5 s, and importing polars, statsmodels, altair, scipy and the analysis
modules in it another ~3-4 s of CPU; the per-run papermill process pays ~1 s more. On a 2-core machine
warming kernels ahead in fresh processes only moves that CPU around. Here one **server** process
(``_server_main``) imports everything once, then waits on a Unix socket; each request forks it:

* ``worker``: the per-run papermill process of ``kernels`` (it gets its job through a file mailbox,
  ``Mailbox``, and writes status.json as a cold worker does);
* ``kernel``: the ipykernel process that worker's kernel manager starts (``ForkProvisioner`` asks the
  server instead of launching ``python -m ipykernel_launcher``); a kernelspec that is not this Python's
  ipykernel is launched the ordinary way.

Each forked process starts its own session (so it is killed as a group, as a cold one is), resets the
environment and working folder it was given, reseeds numpy's global generator, and writes its exit code
to the server's folder. The server forks only while it is single-threaded in Python and before it has
run any polars query (no thread pool exists yet); it exits when its parent dies or its stdin closes.
Linux and macOS only (``os.fork``); elsewhere ``kernels`` keeps its subprocess workers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVER_ENV = "CM_REPORT_FORK"  # "0"/"false"/"no"/"off": warm workers as separate subprocesses instead
START_TIMEOUT = 120.0


def available(flag: str | None = None) -> bool:
    """Whether forked workers can be used here: ``os.fork`` exists and ``CM_REPORT_FORK`` is not off."""
    value = os.environ.get(SERVER_ENV, "1") if flag is None else flag
    return hasattr(os, "fork") and value.strip().lower() not in {"0", "false", "no", "off"}


# ------------------------------------------------------------------------------------ client side


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def _read_message(s: socket.socket) -> dict[str, Any]:
    """One JSON line from a connected socket ({} when it closed first)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data or b"{}")


def _request(sock_path: Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = _read_message(s)
    if "pid" not in reply:
        raise RuntimeError(f"fork server: {reply.get('error', 'no reply')}")
    return reply


class ForkedProcess:
    """A ``subprocess.Popen``-like handle on a process the server forked (it is not our child): ``pid``,
    ``poll``, ``wait``, ``returncode``, signals; ``stdin`` is its job mailbox for workers."""

    def __init__(self, pid: int, exit_dir: Path, mailbox: Mailbox | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = mailbox
        self.stdout = self.stderr = None
        self.args = ["<forked>", str(pid)]
        self._exit_file = exit_dir / str(pid)
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

    def _gone(self) -> bool:
        if self._pidfd is not None:
            return bool(select.select([self._pidfd], [], [], 0)[0])
        return not pid_alive(self.pid)

    def poll(self) -> int | None:
        if self.returncode is None and self._gone():
            try:
                self.returncode = int(self._exit_file.read_text(encoding="ascii"))
            except (OSError, ValueError):
                self.returncode = -signal.SIGKILL  # killed before it could write its exit code
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Mailbox:
    """A worker's stdin, as files: ``write`` + ``close`` delivers the job line; ``close`` alone says stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = b""
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("mailbox closed")
        self._data += data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(self._data)
        os.replace(tmp, self.path)

    @staticmethod
    def receive(path: Path, parent: int) -> str:
        """Worker side: wait for the mailbox file; the job line ('' = stop, or the server went away)."""
        while not path.exists():
            if os.getppid() != parent:
                return ""
            time.sleep(0.01)
        return path.read_text(encoding="utf-8").strip()


class ForkServer:
    """The build's server process: started at once, ready when its imports are done (``wait_ready``)."""

    def __init__(self, code: str, entries: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cm-fork-"))
        self.sock = self.dir / "fork.sock"
        self.exit_dir = self.dir / "exit"
        self.exit_dir.mkdir()
        code_path = self.dir / "warm.py"
        code_path.write_text(code, encoding="utf-8")
        self.log = self.dir / "server.log"
        env = {**os.environ, "CM_REPORT": "1"}
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from cannabis_market.reports.forkserver import _server_main; _server_main()",
                 str(self.sock), str(code_path), str(self.exit_dir), *entries],
                stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        self._ready: bool | None = None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> bool:
        """True once the server listens; False when it died or did not start in ``timeout`` s."""
        if self._ready is None:
            deadline = time.monotonic() + timeout
            while not (self.dir / "ready").exists():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._ready = False
                    self.close()
                    return False
                time.sleep(0.02)
            self._ready = True
        return self._ready

    def spawn_worker(self, entry: str, args: list[str], cwd: str, log: Path, mailbox: Path) -> ForkedProcess:
        """Fork a worker running ``entry`` ("module:function", called as ``function(args, mailbox)``; its
        return value is the exit code) in ``cwd``, output to ``log``."""
        env = {
            **os.environ,
            "CM_REPORT": "1",
            "CM_FORK_SOCKET": str(self.sock),
            "CM_FORK_EXITS": str(self.exit_dir),
        }
        reply = _request(
            self.sock,
            {
                "kind": "worker",
                "entry": entry,
                "args": args,
                "cwd": cwd,
                "env": env,
                "log": str(log),
                "mailbox": str(mailbox),
            },
        )
        return ForkedProcess(int(reply["pid"]), self.exit_dir, Mailbox(mailbox))

    def close(self) -> None:
        """Stop the server (its forked processes are not touched: each has its own session)."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def fork_kernel(
    cmd: list[str], env: dict[str, str], cwd: str | None, log: str | None
) -> ForkedProcess | None:
    """From a forked worker: have the server fork an ipykernel for ``cmd``; None when this is not possible
    (not under a server, or ``cmd`` is not ``<this python> -m ipykernel_launcher``): launch it normally."""
    sock, exits = os.environ.get("CM_FORK_SOCKET"), os.environ.get("CM_FORK_EXITS")
    if not sock or not exits or "ipykernel_launcher" not in cmd:
        return None
    i = cmd.index("ipykernel_launcher")
    if i < 2 or cmd[i - 1] != "-m" or os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        return None
    request = {
        "kind": "kernel",
        "argv": [cmd[0], *cmd[i + 1 :]],
        "env": env,
        "cwd": cwd or os.getcwd(),
        "log": log,
    }
    reply = _request(Path(sock), request)
    return ForkedProcess(int(reply["pid"]), Path(exits))


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):  # type: ignore[misc, valid-type]
        """Launches the kernel as a fork of the server (``fork_kernel``), else as LocalProvisioner does."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            env = kwargs.get("env") or dict(os.environ)
            cwd = kwargs.get("cwd")
            proc = fork_kernel(list(cmd), dict(env), str(cwd) if cwd else None, os.environ.get("CM_FORK_LOG"))
            if proc is None:
                return await super().launch_kernel(cmd, **kwargs)
            self.process = proc
            self.pid = self.pgid = proc.pid
            self.cwd = cwd or os.getcwd()
            return self.connection_info

    return ForkProvisioner


def use_fork_provisioner(km: Any) -> None:
    """Make a not-yet-started kernel manager launch its kernel through the server (when under one)."""
    import uuid

    if not os.environ.get("CM_FORK_SOCKET"):
        return
    km.kernel_id = km.kernel_id or str(uuid.uuid4())
    km.provisioner = _provisioner_class()(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)


# ------------------------------------------------------------------------------------ server side


def _child(request: dict[str, Any], exit_dir: Path) -> None:
    """In the forked process: become the worker or kernel ``request`` asks for; never returns."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        os.chdir(request.get("cwd") or os.getcwd())
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if request.get("log"):
            fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        import numpy as np

        np.random.seed()  # a fresh process draws a new seed; so does every fork
        if request["kind"] == "kernel":
            sys.argv = list(request["argv"])
            from ipykernel import kernelapp

            kernelapp.launch_new_instance()
            code = 0
        else:
            os.environ["CM_FORK_LOG"] = request.get("log") or ""
            module, _, name = request["entry"].partition(":")
            code = getattr(importlib.import_module(module), name)(
                list(request["args"]), Path(request["mailbox"])
            )
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report and exit; nothing may return into the server loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            (exit_dir / str(os.getpid())).write_text(str(code), encoding="ascii")
        os._exit(code)


def _server_main() -> None:
    """Entry point of the server process (see the module docstring). Not a public API."""
    sock_arg, code_arg, exit_arg, *entries = sys.argv[1:]
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type] - see worker._prepare_worker
    parent = os.getppid()
    exec(compile(Path(code_arg).read_text(encoding="utf-8"), "<warm>", "exec"), {"__name__": "__cm_warm__"})
    import ipykernel.kernelapp  # noqa: F401
    import jupyter_client.manager  # noqa: F401
    import nbconvert  # noqa: F401 - workers render their run's page (worker.prerender)
    import papermill  # noqa: F401

    from cannabis_market.reports import html, render, worker  # noqa: F401

    for entry in entries:  # the modules whose functions the workers will run
        importlib.import_module(entry.partition(":")[0])
    from cannabis_market.reports.charts_html import preload_bundle

    preload_bundle()  # the saved Vega bundle, read once here for every worker's page

    exit_dir = Path(exit_arg)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_arg)
    server.listen(16)
    Path(sock_arg).with_name("ready").write_text("ok", encoding="ascii")
    while True:
        readable = select.select([server, sys.stdin], [], [], 0.5)[0]
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if os.getppid() != parent or (sys.stdin in readable and not sys.stdin.buffer.read1(1)):
            return
        if server not in readable:
            continue
        conn, _ = server.accept()
        with conn:
            try:
                conn.settimeout(10.0)
                request = _read_message(conn)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    server.close()
                    conn.close()
                    _child(request, exit_dir)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
