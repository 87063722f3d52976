"""Source archives: the checks every uploaded tarball passes before anything extracts it (pure)."""

from __future__ import annotations

import tarfile
from pathlib import PurePosixPath


class UnsafeArchive(ValueError):
    pass


def check_members(members: list[tarfile.TarInfo], max_files: int = 100_000) -> None:
    """Refuse archives that would write outside their directory or create special files."""
    if len(members) > max_files:
        raise UnsafeArchive(f"archive has {len(members)} entries; at most {max_files} are accepted")
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise UnsafeArchive(f"archive entry {member.name!r} points outside the source directory")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchive(f"archive entry {member.name!r} is a device or special file")
        if member.issym() or member.islnk():
            target = PurePosixPath(member.linkname)
            if target.is_absolute() or ".." in (path.parent / target).parts:
                raise UnsafeArchive(f"archive link {member.name!r} points outside the source directory")


def inspect_archive(path: str) -> int:
    """Open a gzipped (or plain) tarball, check it, and return its number of entries."""
    try:
        with tarfile.open(path, mode="r:*") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnsafeArchive(f"not a tar archive (tar.gz expected): {exc}") from None
    check_members(members)
    return len(members)
