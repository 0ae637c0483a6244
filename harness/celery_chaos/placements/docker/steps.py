"""What every image-build step shares: its error, its timing line, running a host command."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "CHAOS_CACHE_DIR"

Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A build step failed; the message says which step and how to fix it (CLI exit code 2)."""


def cache_dir() -> Path:
    """Where debootstrapped roots are kept between builds (CHAOS_CACHE_DIR overrides)."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "celery-chaos"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def timed(log: Log, what: str) -> Iterator[None]:
    """Log how long a step took: the offline build must stay within CI's minutes."""
    start = time.monotonic()
    log(f"{what} ...")
    yield
    log(f"{what}: done in {time.monotonic() - start:.1f}s")


def run_step(command: list[str], step: str, log_file: Path | None = None) -> None:
    """Run a host command; on failure raise with the tail of its output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if log_file is not None:
        log_file.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise ImageBuildError(f"{step} failed (exit {result.returncode}): {tail}")
