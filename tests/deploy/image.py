"""The project's real Dockerfile built and run with podman, where no Docker daemon is.

The base image cannot be pulled where only the package indexes are reachable, so a
stand-in for it is built from Debian (debootstrap, from the mirror apt already uses),
tagged with the Dockerfile's own base name, and kept in podman's store: later runs on
the same machine reuse it. The Dockerfile itself is built unchanged; its `pip` steps
reach the same package index as this machine's pip, through its configuration and the
folders that configuration names, mounted read-only into the build.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# podman on a machine without systemd or cgroup delegation: runc, cgroupfs, no ulimits
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
# what turns a Debian root file system into a stand-in for the official Python image
STAND_IN = """\
FROM {root}
RUN ln -sf /usr/bin/python3 /usr/local/bin/python && ln -sf /usr/bin/pip3 /usr/local/bin/pip
ENV PIP_BREAK_SYSTEM_PACKAGES=1 LANG=C.UTF-8
LABEL org.opencontainers.image.description="a stand-in for {base}, built from Debian"
CMD ["python3"]
"""


def base_image() -> str:
    """The image the Dockerfile builds FROM (both stages use the same one)."""
    (base,) = set(re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE))
    return base if "/" in base else f"docker.io/library/{base}"


@functools.cache
def environment() -> dict[str, str]:
    folder = Path(tempfile.mkdtemp(prefix="totesys-podman-"))
    conf = folder / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=False,
        env=environment(),
        timeout=timeout,
        **kwargs,
    )


def unavailable() -> str | None:
    """Why the image cannot be built and run here, or None."""
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "debootstrap and podman's host network need root"
    probe = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
    if probe.returncode != 0:
        return f"podman cannot run here: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 sources first, then the list)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        found = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.MULTILINE)
        if found and "security" not in found.group(1):
            return found.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", listing.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def ensure_base() -> str:
    """The Dockerfile's base image: already in podman's store, or built as a stand-in."""
    base = base_image()
    if podman("image", "exists", base, timeout=60).returncode == 0:
        return base
    suite = re.search(r"-(\w+)$", base).group(1)  # python:3.11.11-slim-bookworm -> bookworm
    root_tag = f"localhost/totesys-stand-in-root:{suite}"
    with tempfile.TemporaryDirectory(prefix="totesys-rootfs-") as folder:
        rootfs = Path(folder) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                suite,
                str(rootfs),
                apt_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = podman("import", "-", root_tag, stdin=tar.stdout, timeout=600)
        tar.wait()
        assert imported.returncode == 0, imported.stderr
        layer = Path(folder) / "Containerfile"
        layer.write_text(STAND_IN.format(root=root_tag, base=base))
        built = podman("build", "--pull=never", "-t", base, "-f", str(layer), folder)
        assert built.returncode == 0, built.stderr[-3000:]
    return base


def pip_mounts(folder: Path) -> list[str]:
    """`-v` options that give a build this machine's pip configuration (as one
    /etc/pip.conf) and every file or folder it names (indexes, wheels, certificates)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        found = re.fullmatch(r"(?::env:)?(\w*)\.([\w-]+)='(.*)'", line.strip())
        if found and found.group(1) in ("", "global", "install", "wheel"):
            settings[found.group(2)] = found.group(3)
    conf = folder / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    named = [
        Path(word.removeprefix("file://"))
        for value in settings.values()
        for word in value.split()
        if word.startswith(("/", "file:///"))
    ]
    # a local index's pages link to files beside its `simple` folder: mount its parent
    paths = {path.parent if path.name == "simple" else path for path in named}
    for path in sorted(p for p in paths if p.exists()):
        mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


def build(tag: str) -> subprocess.CompletedProcess:
    """The project's Dockerfile, unchanged, on the base above."""
    ensure_base()
    with tempfile.TemporaryDirectory(prefix="totesys-pip-") as folder:
        return podman(
            "build",
            "--pull=never",
            "--network=host",
            *pip_mounts(Path(folder)),
            "-t",
            tag,
            str(ROOT),
            timeout=900,
        )
