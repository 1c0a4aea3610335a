"""Start and stop a local Label Studio server (SQLite, bound to 127.0.0.1).

Used by the test suite's session fixture and by ``make demo``. Label Studio runs from
its own virtual environment (``.venv-ls``, made by the Makefile) so its pinned
dependencies never mix with galton's.

The first start of a data directory runs Django migrations (tens of seconds); a copy
of a migrated directory starts in seconds, so :func:`migrated_template` migrates once
and every server starts from a copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LabelStudioNotFound", "LocalLabelStudio", "find_label_studio", "free_port", "migrated_template"]

ADMIN_EMAIL = "admin@example.com"


class LabelStudioNotFound(RuntimeError):
    """No ``label-studio`` executable: run ``make venv`` (it installs one into .venv-ls)."""


def find_label_studio() -> Path:
    """The ``label-studio`` executable: ``$GALTON_LABEL_STUDIO``, else ``.venv-ls`` beside the repo."""
    candidates = []
    if os.environ.get("GALTON_LABEL_STUDIO"):
        candidates.append(Path(os.environ["GALTON_LABEL_STUDIO"]))
    repo = Path(__file__).resolve().parents[1]
    candidates.append(repo / ".venv-ls" / "bin" / "label-studio")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise LabelStudioNotFound(
        "label-studio is not installed; run `make venv` (it creates .venv-ls) or set GALTON_LABEL_STUDIO "
        f"to the executable (looked at: {', '.join(map(str, candidates))})"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalLabelStudio:
    """One Label Studio process on 127.0.0.1 with a known admin and legacy API token.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The process gets
    a cleaned environment: Label Studio also reads unprefixed variables such as
    ``CI``, ``PORT``, ``HOST`` and ``DEBUG``, which must not leak in from the caller.
    """

    data_dir: Path
    token: str
    password: str
    port: int = 0
    executable: Path | None = None
    startup_timeout: float = 240.0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_handle: object = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _environment(self) -> dict[str, str]:
        keep = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
        keep.update(
            HOME=str(self.data_dir / "home"),
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            ML_BLOCK_LOCAL_IP="false",
            SSRF_PROTECTION_ENABLED="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            COLLECT_ANALYTICS="false",
            LATEST_VERSION_CHECK="false",
        )
        return keep

    def start(self) -> LocalLabelStudio:
        executable = self.executable or find_label_studio()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        if not _port_is_free(self.port):
            # Label Studio would silently move to the next port; refuse instead
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is busy")
        log_path = self.log_path or self.data_dir / "label-studio.log"
        self._log_handle = open(log_path, "ab")
        command = [
            str(executable), "start", "--no-browser",
            "--internal-host", "127.0.0.1", "--port", str(self.port),
            "--host", self.url, "--data-dir", str(self.data_dir),
        ]
        self._process = subprocess.Popen(
            command, env=self._environment(), stdout=self._log_handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.info("starting Label Studio on %s (pid %s)", self.url, self._process.pid)
        self._wait_healthy(log_path)
        return self

    def _wait_healthy(self, log_path: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Label Studio exited with code {self._process.returncode}; log tail:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Label Studio did not answer /health within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM the process group we started, SIGKILL after 10 s."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None

    def __enter__(self) -> LocalLabelStudio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def migrated_template(directory: Path, *, token: str, password: str) -> Path:
    """Migrate a fresh data directory once (first start, then stop) and return it.

    Copy it with :func:`shutil.copytree` for each server: a copy starts in seconds. The
    admin user and token are created at this first start, so every copy shares them.
    """
    marker = directory / ".migrated"
    if marker.is_file():
        return directory
    if directory.exists():
        shutil.rmtree(directory)
    with LocalLabelStudio(data_dir=directory, token=token, password=password):
        pass
    # the log of the migration run is not part of the template
    (directory / "label-studio.log").unlink(missing_ok=True)
    marker.write_text("ok\n")
    return directory
