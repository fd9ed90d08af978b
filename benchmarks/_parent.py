"""What both client scripts' parents use to set up and describe a run without importing
the other clients: they run without the ``bench`` extra when only txamqp091 is asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def setup_client() -> Any:
    """pika's blocking adapter for the untimed setup (pre-load, cleanup), or, when pika is
    not installed (no ``bench`` extra), txamqp091's pika-compatible one, so that the
    txamqp091 rows run without the other clients' packages. pika comes first: with it
    installed the setup is what it always was, and no txamqp091 loop thread is left
    polling in the parent while workers are timed."""
    try:
        import pika
    except ImportError:
        from txamqp091 import blocking as pika
    return pika


def installed(distribution: str) -> str:
    """The version of ``distribution`` without importing it, or ``"absent"``."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def add_broker_arguments(parser: Any) -> None:
    """``--host``, ``--port``, ``--user``, ``--password``: the broker every script talks
    to, defaulting to ``AMQP_HOST`` etc., else the local guest broker."""
    import os

    parser.add_argument("--host", default=os.environ.get("AMQP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AMQP_PORT", "5672")))
    parser.add_argument("--user", default=os.environ.get("AMQP_USER", "guest"))
    parser.add_argument("--password", default=os.environ.get("AMQP_PASSWORD", "guest"))


def source_state(root: Path) -> dict[str, Any]:
    """Which txamqp091 code was measured: git HEAD, dirty flag, digest of the package
    sources, of the checkout at ``root`` (this one, or compare.py's --baseline)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((root / "txamqp091").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    state: dict[str, Any] = {"source_sha1": digest.hexdigest()[:12]}
    try:
        state["git_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "txamqp091"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        state["git_dirty"] = bool(dirty)
    except OSError:
        pass
    return state


def worker(a: Any, root: Path, script: str) -> tuple[list[str], Path]:
    """The start of a worker's command line (interpreter, script) and the tree it runs
    in: this checkout's ``root``, or the one compare.py's --baseline names
    (``a.worker_root``, run by ``a.worker_python``, the same script name there)."""
    tree = Path(getattr(a, "worker_root", None) or root)
    python = getattr(a, "worker_python", None) or sys.executable
    return [python, str(tree / "benchmarks" / script)], tree
