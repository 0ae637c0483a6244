"""The offline base image: a Debian bookworm root made with debootstrap from the host's Debian
mirror, pruned, and ``docker import``-ed as ``celery-chaos/base:bookworm``. It is the base of
both images where no container registry is reachable (the usual case on CI here), and is rebuilt
only when its recipe (mirror, packages, pruning) changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from celery_chaos.placements.docker.steps import ImageBuildError, Log, cache_dir, run_step, timed

BASE_IMAGE = "celery-chaos/base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-pip", "procps", "redis-server")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "CHAOS_DEBIAN_MIRROR"
BASE_KEY_LABEL = "io.celery-chaos.base-key"
# Trimmed from the debootstrapped root: downloaded .debs and documentation nobody reads in a
# container (about 100 MB of the ~310 MB root).
ROOTFS_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)


def debian_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d")) -> str:
    """The host's Debian mirror (what apt already reaches), else deb.debian.org.

    Reads deb822 ``*.sources`` files and one-line ``*.list`` files; CHAOS_DEBIAN_MIRROR wins.
    """
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV].rstrip("/")
    candidates = sorted(sources_dir.glob("*.sources")) + sorted(sources_dir.glob("*.list"))
    candidates.append(sources_dir.parent / "sources.list")
    for path in candidates:
        uri = _mirror_in(path)
        if uri:
            return uri
    return DEFAULT_MIRROR


def _mirror_in(path: Path) -> str | None:
    """The first URI in an apt sources file that serves the bookworm main archive."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "URIs:":
            uris = words[1:]
        elif len(words) >= 3 and words[0] == "deb" and DEBIAN_SUITE in words[2:3]:
            uris = [w for w in words[1:3] if "://" in w][:1]
        else:
            continue
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def base_key(mirror: str) -> str:
    """A short hash naming what the base holds, so a changed package list rebuilds it."""
    recipe = "|".join((DEBIAN_SUITE, mirror, *DEBIAN_PACKAGES, *ROOTFS_PRUNE, *BASE_CHANGES))
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def ensure_base_image(client: Any, log: Log) -> str:
    """Import the Debian base image unless one built from the same recipe already exists."""
    mirror = debian_mirror()
    key = base_key(mirror)
    if _image_label(client, BASE_IMAGE, BASE_KEY_LABEL) == key:
        log(f"base image {BASE_IMAGE} is current (key {key})")
        return BASE_IMAGE
    tarball = cache_dir() / f"base-{DEBIAN_SUITE}-{key}.tar"
    if tarball.exists():
        log(f"using cached root filesystem {tarball}")
    else:
        make_rootfs_tarball(tarball, mirror, log)
    repository, tag = BASE_IMAGE.rsplit(":", 1)
    changes = [*BASE_CHANGES, f"LABEL {BASE_KEY_LABEL}={key}"]
    with timed(log, f"docker import {tarball.name} as {BASE_IMAGE}"):
        # A path, not a stream: docker-py's chunked upload of a file object is rejected by
        # dockerd 20.10 ("invalid byte in chunk length").
        client.api.import_image(src=str(tarball), repository=repository, tag=tag, changes=changes)
    return BASE_IMAGE


def _image_label(client: Any, image: str, label: str) -> str | None:
    import docker.errors

    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    return labels.get(label)


def make_rootfs_tarball(tarball: Path, mirror: str, log: Log) -> None:
    """debootstrap a minimal bookworm root, prune it, and tar it to ``tarball`` (atomically)."""
    if os.geteuid() != 0:
        raise ImageBuildError("offline build: debootstrap needs root (run as root or use sudo)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("offline build: debootstrap not installed (run .ci/docker-setup.sh)")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as work:
        root = Path(work) / "root"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            mirror,
        ]
        with timed(log, f"debootstrap {DEBIAN_SUITE} from {mirror}"):
            run_step(command, "debootstrap", log_file=Path(work) / "debootstrap.log")
        for relative in ROOTFS_PRUNE:
            _empty_dir(root / relative)
        partial = Path(work) / "rootfs.tar"
        with timed(log, f"tar root filesystem to {tarball}"):
            run_step(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], "tar")
        partial.replace(tarball)


def _empty_dir(path: Path) -> None:
    """Remove a directory's contents but keep the directory (packages expect it to exist)."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
