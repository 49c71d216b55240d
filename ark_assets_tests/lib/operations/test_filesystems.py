"""Single-host state is refused on a network file system, read from the mount table."""

from pathlib import Path

import pytest

from ark_assets.lib.operations.filesystems import NetworkFileSystemError, mount_of, require_local
from ark_assets.lib.synthesis import cache as cache_module
from ark_assets.lib.synthesis.cache import TeacherCache


def _mounts(tmp_path: Path, *entries: tuple[Path, str]) -> Path:
    table = tmp_path / "mounts"
    lines = ["/dev/root / ext4 rw 0 0"]
    lines += [f"srv:/export {str(p).replace(' ', chr(92) + '040')} {t} rw 0 0" for p, t in entries]
    table.write_text("\n".join(lines) + "\n")
    return table


def test_the_longest_mount_point_above_a_path_decides(tmp_path: Path) -> None:
    shared = tmp_path / "shared dir"
    local = shared / "local"
    local.mkdir(parents=True)
    table = _mounts(tmp_path, (shared, "nfs4"), (local, "ext4"))
    assert mount_of(shared / "cache" / "teacher.sqlite", table).fs_type == "nfs4"
    assert mount_of(local / "teacher.sqlite", table).fs_type == "ext4"
    assert mount_of(tmp_path / "elsewhere", table).fs_type == "ext4"  # the root


def test_a_cache_on_nfs_is_refused_and_a_local_one_is_not(tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "nfs"
    shared.mkdir()
    table = _mounts(tmp_path, (shared, "nfs"))
    with pytest.raises(NetworkFileSystemError, match="ARK_TEACHER_CACHE"):
        require_local(shared / "teacher.sqlite", "the teacher cache", "ARK_TEACHER_CACHE", table)
    monkeypatch.setattr(cache_module, "require_local", _bound(require_local, table))
    with pytest.raises(NetworkFileSystemError, match="nfs file system"):
        TeacherCache(shared / "teacher.sqlite")
    assert not (shared / "teacher.sqlite").exists()  # refused before SQLite made the file
    TeacherCache(tmp_path / "local" / "teacher.sqlite").count()


def test_without_a_mount_table_it_cannot_tell_and_lets_the_path_through(tmp_path: Path) -> None:
    missing = tmp_path / "no-mounts"
    assert mount_of(tmp_path, missing) is None
    require_local(tmp_path / "teacher.sqlite", "the teacher cache", "ARK_TEACHER_CACHE", missing)


def _bound(check, table: Path):
    return lambda path, what, variable: check(path, what, variable, table)
