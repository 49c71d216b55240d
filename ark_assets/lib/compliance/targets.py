"""What ``ark forget`` and ``ark audit`` accept as a target, checked before anything is looked up.

A target is refused when it is empty or blank, holds a NUL character (no key, name or path can)
or is longer than ``MAX_TARGET_CHARS``. A target with a ``/`` in it is a *path*; anything else
is a *name* (an asset or conversation key, or a file name as it arrived, compared byte for byte)
and is never opened as a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Linux's PATH_MAX: no key, file name or path the platform writes is longer, and the file
# system refuses longer paths with an error instead of an answer.
MAX_TARGET_CHARS = 4096
# NAME_MAX: a longer name cannot be a file's name, so no file is looked up for it.
MAX_FILE_NAME_BYTES = 255


class InvalidTarget(ValueError):
    """A target that cannot name anything; the message says what is accepted."""


def checked_target(target: str, command: str) -> str:
    """``target`` unchanged when it can name something; else InvalidTarget saying why."""
    if not target.strip():
        raise InvalidTarget(f"{command}: the target is empty; name a key, a file or a path")
    if "\0" in target:
        raise InvalidTarget(f"{command}: the target holds a NUL character, which no name can")
    if len(target) > MAX_TARGET_CHARS:
        raise InvalidTarget(
            f"{command}: the target is {len(target):,} characters long; no key, file name or "
            f"path is longer than {MAX_TARGET_CHARS:,}"
        )
    return target


def is_path(target: str) -> bool:
    return "/" in target


def is_file_name(name: str) -> bool:
    """Whether ``name`` can be one directory entry's name (so ``folder / name`` stays inside)."""
    return (
        bool(name)
        and not is_path(name)
        and name not in (".", "..")
        and "\0" not in name
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_FILE_NAME_BYTES
    )


def resolved_inside(path: Path, roots: Iterable[Path]) -> Path | None:
    """``path`` with symlinks resolved when it lies inside one of ``roots``; else None."""
    try:
        resolved = path.expanduser().resolve()
        inside = [root.expanduser().resolve() for root in roots]
    except (OSError, RuntimeError):  # a name too long, a symlink loop
        return None
    return resolved if any(resolved.is_relative_to(root) for root in inside) else None
