"""Which file system a path is on, to refuse single-host state on a network file system.

The teacher cache is SQLite in WAL mode: WAL keeps its index in shared memory, which processes
on two hosts never share, so two pods using one cache file over NFS can corrupt it without an
error. The platform refuses such a path instead (``require_local``). What it can tell: the
mount table (``/proc/self/mounts``) on Linux names every mount's file-system type; the mount
holding a path is the longest mount point above it. Where there is no mount table (macOS,
Windows) it cannot tell, and the check passes (docs/scaling.md says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MOUNTS = Path("/proc/self/mounts")
# File-system types whose files are served by another host (or a user-space daemon that may be).
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.goofys",
        "fuse.rclone",
        "fuse.juicefs",
        "fuse.glusterfs",
        "fuse.cephfs",
    }
)


@dataclass(frozen=True)
class Mount:
    point: Path
    fs_type: str


class NetworkFileSystemError(ValueError):
    """Single-host state pointed at a network file system."""


def mount_of(path: Path, mounts: Path = MOUNTS) -> Mount | None:
    """The mount holding ``path`` (resolved; the nearest existing parent when it does not exist
    yet), or None where there is no mount table to read."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = _existing(path.resolve())
    best: Mount | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(_unescape(fields[1]))
        if (target == point or point in target.parents) and (
            best is None or len(point.parts) > len(best.point.parts)
        ):
            best = Mount(point, fields[2])
    return best


def require_local(path: Path, what: str, variable: str, mounts: Path = MOUNTS) -> None:
    """Raise ``NetworkFileSystemError`` when ``path`` is on a network file system."""
    mount = mount_of(path, mounts)
    if mount is not None and mount.fs_type in NETWORK_TYPES:
        raise NetworkFileSystemError(
            f"{what} at {path} is on a {mount.fs_type} file system (mounted at {mount.point}): "
            "it is single-host state that processes on two hosts would corrupt without an "
            f"error; set {variable} to a node-local path (docs/scaling.md, 'State that is "
            "single-host')"
        )


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _unescape(field: str) -> str:
    """Mount points with spaces and tabs are written octal-escaped (``\\040``)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field
