"""``LMServer``: start the embedded OpenAI-compatible LM in a thread or in its own process.

    >>> with LMServer(latency_ms=20).start() as server:
    ...     lm = server.lm()                         # a dspy.LM pointed at it
    ...     server.stats()["requests"]
    0

Thread mode shares the kernel's GIL (fine for tests and demos, ~1 ms per request); process
mode (``start(mode="process")``) runs ``python -m dspex_lab.lm_server`` so a heavy benchmark
does not compete with the client for the GIL. ``configure()``, ``stats()`` and ``reset()`` work
in both modes (over HTTP for a process).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm_server.app import DEFAULT_MODEL, LMApp
from dspex_lab.lm_server.handler import LMHTTPServer
from dspex_lab.lm_server.options import ServerOptions

__all__ = ["LISTENING", "LMServer"]

LISTENING = "dspex-lab LM server listening on "
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class LMServer:
    """The embedded LM server. See the module docstring; options are documented in
    ``dspex_lab.lm_server.options``."""

    def __init__(self, latency_ms: float = 0.0, jitter_ms: float = 0.0, error_rate: float = 0.0,
                 error_kinds: tuple[str, ...] | list[str] = ("429", "500"), seed: int = 0,
                 responder: Any = None, rules: Any = None, **options: Any) -> None:
        self._options = ServerOptions().with_changes(
            latency_ms=latency_ms, jitter_ms=jitter_ms, error_rate=error_rate,
            error_kinds=error_kinds, seed=seed, responder=responder, rules=rules, **options)
        self.mode: str | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._app: LMApp | None = None
        self._httpd: LMHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._tempfiles: list[str] = []
        self._started_options = self._options

    @property
    def options(self) -> ServerOptions:
        """The current options (in thread mode, including changes made over HTTP)."""
        return self._app.options if self._app is not None else self._options

    @property
    def initial_options(self) -> ServerOptions:
        """The options the server was started with (``reset(options=True)`` restores them)."""
        return self._started_options

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, port: int = 0, mode: str = "thread", host: str = "127.0.0.1") -> LMServer:
        """Start serving on ``host:port`` (0 picks a free port); returns ``self``."""
        if self.running:
            raise ConfigurationError(f"This LM server already runs at {self.url}; stop() it "
                                     "first or create another LMServer.")
        if mode not in ("thread", "process"):
            raise ConfigurationError(f"mode must be 'thread' or 'process', got {mode!r}.")
        self.host = host
        self._started_options = self._options
        if mode == "thread":
            self._start_thread(port)
        else:
            self._start_process(port)
        self.mode = mode
        return self

    def _start_thread(self, port: int) -> None:
        self._app = LMApp(self._options)
        self._httpd = LMHTTPServer((self.host, port), self._app)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={
            "poll_interval": 0.05}, name=f"dspex-lm-server-{self.port}", daemon=True)
        self._thread.start()

    def _start_process(self, port: int, timeout: float = 30.0) -> None:
        cmd = [sys.executable, "-m", "dspex_lab.lm_server", "--host", self.host, "--port",
               str(port), "--options-json", json.dumps(self._portable_options()),
               "--exit-with-parent"]
        responder = self.options.responder
        if callable(responder):
            cmd += ["--responder-pickle", self._pickle_responder(responder)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                      env=env)
        line = _read_line(self._proc, timeout)
        if not line.startswith(LISTENING):
            self._proc.kill()
            self._proc.wait()
            stderr.seek(0)
            raise ConfigurationError(
                f"The LM server process did not start (exit code {self._proc.returncode}); "
                f"it printed {line!r}. Its error output:\n{stderr.read()[-2000:]}")
        stderr.close()
        self.port = int(line.strip().rsplit(":", 1)[1].split("/", 1)[0])

    def _portable_options(self) -> dict[str, Any]:
        data = self.options.public()
        data["responder"] = self.options.responder if isinstance(self.options.responder,
                                                                 str) else None
        return data

    def _pickle_responder(self, responder: Any) -> str:
        import cloudpickle

        fd, path = tempfile.mkstemp(prefix="dspex-responder-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            cloudpickle.dump(responder, f)
        self._tempfiles.append(path)
        return path

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: close connections and join threads, or end the process."""
        if self._httpd is not None and self._app is not None:
            self._app.stopping.set()
            self._httpd.shutdown()
            self._httpd.close_all(timeout=timeout / 2)
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout)
        if self._proc is not None:
            _terminate(self._proc, timeout)
        for path in self._tempfiles:
            Path(path).unlink(missing_ok=True)
        if self._app is not None:
            self._options = self._app.options
        self._httpd = self._thread = self._proc = self._app = None
        self._tempfiles = []
        self.mode = None

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LMServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:  # a forgotten process server must not outlive its owner
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<LMServer {where} mode={self.mode}>"

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, ending in ``/v1`` (what ``api_base`` wants)."""
        if self.port is None:
            raise ConfigurationError("The LM server is not started; call start() first.")
        return f"http://{self.host}:{self.port}/v1"

    def lm(self, model: str = DEFAULT_MODEL, **kwargs: Any) -> Any:
        """A ``dspy.LM`` for this server (``cache=False`` unless given)."""
        import dspy

        kwargs.setdefault("cache", False)
        return dspy.LM(f"openai/{model}", api_base=self.url, api_key="dspex-local", **kwargs)

    # -- control -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Request, error and token totals since start or the last ``reset()``."""
        if self._app is not None:
            return self._app.stats()
        return self._http("GET", "/stats")

    def reset(self, options: bool = False) -> None:
        """Zero the stats and re-arm ``[[fail:once:...]]`` markers; ``options=True`` also
        restores the options the server was started with."""
        if self._app is not None:
            self._app.reset(options=options)
        elif self._proc is not None:
            self._http("POST", "/reset", {"options": options})
            if options:
                self._options = self._started_options

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change options while running (latency_ms, error_rate, ...); returns them all."""
        if self._app is not None:
            return self._app.configure(**changes)
        if self._proc is not None and callable(changes.get("responder")):
            raise ConfigurationError(
                "A process-mode server cannot take a new responder callable at run time; "
                "pass a 'module:function' string or restart the server with it.")
        self._options = self._options.with_changes(**changes)
        if self._proc is not None:
            if "rules" in changes:
                changes["rules"] = [r.to_dict() for r in self._options.rules]
            return self._http("POST", "/config", changes)
        return self._options.public()

    def _http(self, method: str, route: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{route}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", {}).get("message", str(exc))
            raise ConfigurationError(detail) from None


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process prints, or "" if it exits or stays silent too long."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
    return ""


def _terminate(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
