#!/usr/bin/env python3
"""Build real filesystem images (ext4, XFS, NTFS) from a directory tree, at test time.

Strongroom reads files out of raw disk images (ext4, XFS and NTFS readers);
the integration tests, the benchmark and the demo need real images made by
the filesystems' own tools, and a manifest to compare what a reader returns
with, file by file. Nothing here needs a kernel mount: ext4 is populated by
``mkfs.ext4 -d``, XFS by ``mkfs.xfs -p`` (a generated protofile) and NTFS
through ntfs-3g over FUSE (``/dev/fuse``).

Commands (``build.py --help``)::

    build.py tree --out DIR [--big] [--size64] [--manifest FILE] [--force]
    build.py image --fs FS --out FILE [--tree DIR] [--layout bare|gpt|mbr] [--size MIB]
    build.py selfcheck [--work DIR] [--big] [--keep]

``tree`` writes the standard tree and prints its manifest (JSON); ``image``
builds one image and prints one JSON line describing it; ``selfcheck`` builds
every kind of image and reads each back with the filesystem's own tools
(debugfs, xfs_db, ntfs-3g/ntfscat, blkid), comparing with the manifest.

The manifest (JSON object):

* ``format``: "strongroom-fsimages-manifest/1"; ``tree``: the tree's absolute
  path; ``options``: {"big": bool, "size64": bool};
* ``root``: the tree's root directory, {"mode", "uid", "gid", "mtime"};
* ``entries``: one object per entry below the root, sorted by the UTF-8
  bytes of ``path`` (so parents come before children), with
  ``path`` (relative, POSIX, UTF-8), ``type`` ("file", "dir" or "symlink"),
  ``size`` (bytes; a symlink's is its target's length in bytes; 0 for a
  dir), ``mode`` (permission bits st_mode & 0o7777, an integer), ``uid``,
  ``gid``, ``mtime`` (integer seconds since the epoch, may be negative or
  past 2038; every time has 0 ns); files also ``sha256`` (hex, of the whole
  content, holes as zeros); symlinks ``target``; the second and later names
  of a hard-linked file ``hardlink_of`` (the first name in path order);
  files written sparse ``data_extents``: [[offset, length], ...], the only
  regions written, everything else being a hole;
* ``expect``: per filesystem ("ext4", "xfs", "ntfs"), what an image of it
  keeps: ``fields`` (entry keys to compare), ``absent`` (paths not in the
  image), ``differ`` ({path: {key: value in the image}}), ``extra`` (names
  the filesystem adds at its root), ``root`` (root keys kept), ``holes``,
  ``hardlinks`` (bools), ``symlinks`` ("posix" or "interix"), ``notes``.

Importable: :func:`write_tree`, :func:`make_manifest`, :func:`build_image`,
:func:`selfcheck`. Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Iterator

MIB = 1 << 20
GIB = 1 << 30
BLOCK = 4096

#: The mtime of most entries is BASE_MTIME + 61 * (index in sorted path order).
BASE_MTIME = 1_700_000_000
#: The manifest's format tag; bump when a key changes meaning.
MANIFEST_FORMAT = "strongroom-fsimages-manifest/1"
#: Filesystems built from a tree.
TREE_FILESYSTEMS = ("ext4", "xfs", "ntfs")
#: Images that only carry a signature (or nothing at all).
SIGNATURE_KINDS = ("unformatted", "luks", "lvm", "btrfs", "zfs", "swap")
LAYOUTS = ("bare", "gpt", "mbr")
#: Where the filesystem starts in a partitioned image (partition 2).
PART_OFFSET = 2 * MIB
#: Partition 1, before it: 1 MiB of nothing at 1 MiB.
PART1_OFFSET = 1 * MIB
PART1_SIZE = 1 * MIB
#: Room left after partition 2 (the GPT backup header lives there).
DISK_TAIL = 1 * MIB

#: Fixed identifiers, so that two builds of the same tree look alike.
FS_UUID = "5d1c6b0e-8a3f-4f43-9c0a-7e57f5e1ab1e"
HASH_SEED = "0b9e3c9a-2f5b-4d6c-8e1f-5a4b3c2d1e0f"
DISK_GUID = "8f0e5a7c-3b2d-4e1f-9a6b-c5d4e3f2a1b0"
MBR_ID = "0x5e7c0a11"
LABEL = "strongroom"

#: mkfs.xfs 6.1 reads a protofile's regular file with one read() into one
#: malloc'ed buffer: Linux returns at most 0x7ffff000 bytes from one read(),
#: so any larger file makes mkfs fail ("read failed"), after holding the
#: first 2 GiB in memory.
XFS_PROTO_MAX_FILE = 0x7FFFF000
#: XFS v5 filesystems must be at least 300 MiB (mkfs.xfs 5.19 and later).
XFS_MIN_MIB = 300
#: The longest symlink target kept in the inode (512-byte v5 inodes: 512 - 176).
XFS_INLINE_SYMLINK_MAX = 336

#: Partition type per filesystem: (GPT type GUID, MBR type byte).
PART_TYPES: dict[str, tuple[str, str]] = {
    "ext4": ("0FC63DAF-8483-4772-8E79-3D69E8477DE4", "83"),
    "xfs": ("0FC63DAF-8483-4772-8E79-3D69E8477DE4", "83"),
    "btrfs": ("0FC63DAF-8483-4772-8E79-3D69E8477DE4", "83"),
    "unformatted": ("0FC63DAF-8483-4772-8E79-3D69E8477DE4", "83"),
    "ntfs": ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "7"),
    "swap": ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "82"),
    "lvm": ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "8e"),
    "luks": ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "83"),
    "zfs": ("6A898CC3-1DD2-11B2-99A6-080020736631", "bf"),
}
#: Partition 1: a BIOS boot partition (GPT) / "non-FS data" (MBR), left zero.
PART1_TYPES = ("21686148-6449-6E6F-744E-656564454649", "da")

#: Tools each command needs, and the Debian package that has them.
TOOL_PACKAGES = {
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "xfs_db": "xfsprogs",
    "xfs_repair": "xfsprogs",
    "mkntfs": "ntfs-3g",
    "ntfs-3g": "ntfs-3g",
    "ntfscat": "ntfs-3g",
    "ntfsls": "ntfs-3g",
    "ntfsinfo": "ntfs-3g",
    "ntfsfix": "ntfs-3g",
    "sfdisk": "fdisk",
    "sgdisk": "gdisk",
    "mkswap": "util-linux",
    "blkid": "util-linux",
}


class BuildError(RuntimeError):
    """A tool failed or a check did not hold."""


# --------------------------------------------------------------------------
# small helpers


def _log(msg: str) -> None:
    """Progress on stderr (stdout carries the JSON)."""
    print(f"fsimages: {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """Path of a tool, also looking in the sbin directories a non-root PATH lacks."""
    found = shutil.which(name) or shutil.which(
        name, path="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
    )
    if not found:
        pkg = TOOL_PACKAGES.get(name, "?")
        raise BuildError(f"{name} not found: install the Debian package {pkg} (make setup)")
    return found


def run(
    args: list[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool (first element looked up with :func:`tool`), raising BuildError on failure."""
    argv = [tool(args[0])] + [str(a) for a in args[1:]]
    full_env = dict(os.environ, LC_ALL="C", TZ="UTC")
    if env:
        full_env.update(env)
    proc = subprocess.run(argv, input=input, capture_output=True, env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise BuildError(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            f"{proc.stdout.decode(errors='replace')[-3000:]}\n{proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return proc


def content(tag: str, n: int) -> bytes:
    """Deterministic pseudo-random bytes: SHAKE-256 of ``strongroom-fsimages:<tag>``.

    Any SHAKE-256 (FIPS 202) implementation gives the same bytes.
    """
    return hashlib.shake_256(f"strongroom-fsimages:{tag}".encode()).digest(n)


def data_regions(fd: int, size: int) -> list[tuple[int, int]]:
    """The file's data regions as (offset, length), from SEEK_DATA/SEEK_HOLE."""
    regions: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return [(0, size)] if size else []
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        end = min(end, size)
        if end > start:
            regions.append((start, end - start))
        pos = end
    return regions


_ZEROS = bytes(MIB)


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's content; holes are hashed as zeros without reading them."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        for off, length in data_regions(f.fileno(), size):
            _hash_zeros(h, off - pos)
            f.seek(off)
            left = length
            while left:
                chunk = f.read(min(left, 4 * MIB))
                if not chunk:
                    raise BuildError(f"{path}: short read")
                h.update(chunk)
                left -= len(chunk)
            pos = off + length
        _hash_zeros(h, size - pos)
    return h.hexdigest()


def _hash_zeros(h: Any, n: int) -> None:
    while n > 0:
        k = min(n, len(_ZEROS))
        h.update(_ZEROS[:k] if k < len(_ZEROS) else _ZEROS)
        n -= k


def copy_sparse(src: str | Path, dst_fd: int, dst_offset: int, length: int | None = None) -> None:
    """Copy the data regions of ``src`` (up to ``length``) into ``dst_fd`` at ``dst_offset``."""
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size if length is None else length
        for off, n in data_regions(f.fileno(), size):
            n = min(n, size - off)
            done = 0
            while done < n:
                try:
                    k = os.copy_file_range(f.fileno(), dst_fd, n - done, off + done, dst_offset + off + done)
                except OSError:
                    k = 0
                if k <= 0:  # no copy_file_range across these files: plain copy
                    f.seek(off + done)
                    buf = f.read(min(n - done, 4 * MIB))
                    os.pwrite(dst_fd, buf, dst_offset + off + done)
                    k = len(buf)
                done += k


def disk_usage(path: str | Path) -> int:
    """Bytes a file really takes on disk (st_blocks * 512)."""
    return os.stat(path).st_blocks * 512


# --------------------------------------------------------------------------
# the standard tree


class _TreeWriter:
    """Creates entries under ``root`` and applies modes, owners and mtimes at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # rel path -> (mode, uid, gid, fixed mtime or None); hard links are not listed
        self.meta: dict[str, tuple[int, int, int, int | None]] = {}
        self.hardlinks: dict[str, str] = {}
        self.extents: dict[str, list[list[int]]] = {}

    def _abs(self, rel: str) -> Path:
        return self.root / rel

    def _parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.meta:
                self.dir(d)

    def dir(self, rel: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int | None = None) -> None:
        """A directory (parents are made as needed)."""
        self._parents(rel)
        self._abs(rel).mkdir(exist_ok=True)
        self.meta[rel] = (mode, uid, gid, mtime)

    def file(
        self, rel: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int | None = None
    ) -> None:
        """A regular file with ``data``."""
        self._parents(rel)
        self._abs(rel).write_bytes(data)
        self.meta[rel] = (mode, uid, gid, mtime)

    def sparse(self, rel: str, size: int, chunks: list[tuple[int, bytes]], mode: int = 0o644) -> None:
        """A sparse file of ``size`` bytes: only ``chunks`` (offset, data) are written."""
        self._parents(rel)
        with open(self._abs(rel), "wb") as f:
            for off, data in chunks:
                f.seek(off)
                f.write(data)
            f.truncate(size)
        self.meta[rel] = (mode, 0, 0, None)
        self.extents[rel] = [[off, len(data)] for off, data in chunks]

    def symlink(self, rel: str, target: str, uid: int = 0, gid: int = 0, mtime: int | None = None) -> None:
        """A symbolic link to ``target`` (not followed)."""
        self._parents(rel)
        os.symlink(target, self._abs(rel))
        self.meta[rel] = (0o777, uid, gid, mtime)

    def hardlink(self, rel: str, existing: str) -> None:
        """A second name for the file ``existing``."""
        self._parents(rel)
        os.link(self._abs(existing), self._abs(rel))
        self.hardlinks[rel] = existing

    def finish(self, root_meta: tuple[int, int, int, int]) -> None:
        """Apply owners and modes, then mtimes deepest first (the root last)."""
        can_chown = os.geteuid() == 0
        if not can_chown:
            _log("not root: entries keep your uid/gid (the manifest says what they are)")
        order = sorted(set(self.meta) | set(self.hardlinks), key=lambda p: p.encode())
        index = {p: i for i, p in enumerate(order)}
        for rel, (mode, uid, gid, _) in self.meta.items():
            p = self._abs(rel)
            if can_chown:
                os.chown(p, uid, gid, follow_symlinks=False)
            if not p.is_symlink():
                os.chmod(p, mode)
        mtimes: dict[str, int] = {}
        for rel, (_, _, _, fixed) in self.meta.items():
            mtimes[rel] = fixed if fixed is not None else BASE_MTIME + 61 * index[rel]
        for rel, first in self.hardlinks.items():
            mtimes[rel] = mtimes[first]
        for rel in sorted(mtimes, key=lambda p: (-p.count("/"), p.encode())):
            t = mtimes[rel] * 1_000_000_000
            os.utime(self._abs(rel), ns=(t, t), follow_symlinks=False)
        mode, uid, gid, mtime = root_meta
        if can_chown:
            os.chown(self.root, uid, gid)
        os.chmod(self.root, mode)
        os.utime(self.root, ns=(mtime * 1_000_000_000,) * 2)


#: The tree's root directory: mode, uid, gid, mtime.
ROOT_META = (0o755, 0, 0, BASE_MTIME - 86_400)
#: Directories below deep/ (deep/d01/.../d24/bottom.txt).
DEEP_DEPTH = 24


def write_tree(out: Path, *, big: bool = False, size64: bool = False, force: bool = False) -> dict[str, Any]:
    """Write the standard tree into ``out`` and return its manifest (see :func:`make_manifest`).

    ``big`` adds big/over-4GiB (sparse, 4 GiB + 1 MiB, data at both ends and
    across the 4 GiB mark); ``size64`` adds sizes/64MiB. ``out`` must be
    absent or empty unless ``force`` (then its content is removed first).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise BuildError(f"{out} is not empty (use --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t = _TreeWriter(out)

    t.file(
        "README.txt",
        b"Strongroom filesystem test tree: written by tests/fsimages/build.py, "
        b"compared file by file with its manifest.\n",
    )
    # empty things
    t.file("empty/empty-file", b"")
    t.dir("empty/empty-dir")
    # tiny files: ext4 inline data (60 bytes in i_block, more in the inode's xattr space)
    for n in (1, 13, 59, 60, 61, 100, 150, 200):
        t.file(f"tiny/{n:03d}-bytes", content(f"tiny/{n}", n))
    # sizes around block boundaries, and bigger
    for name, n in (
        ("1KiB", 1024),
        ("4095B", 4095),
        ("4096B", 4096),
        ("4097B", 4097),
        ("1MiB", MIB),
        ("3MiB+7", 3 * MIB + 7),
    ):
        t.file(f"sizes/{name}", content(f"sizes/{name}", n))
    if size64:
        t.file("sizes/64MiB", content("sizes/64MiB", 64 * MIB))
    # sparse files
    t.sparse("sparse/hole-then-data", MIB + 4096, [(MIB, content("sparse/htd", 4096))])
    t.sparse("sparse/data-then-hole", MIB, [(0, content("sparse/dth", 8192))])
    t.sparse("sparse/all-hole", 16 * MIB, [])
    t.sparse(
        "sparse/mixed",
        2 * MIB,
        [(0, content("sparse/mixed/0", 4096)), (256 * 1024, content("sparse/mixed/1", 4096)),
         (MIB, content("sparse/mixed/2", 12288))],
    )
    t.sparse("sparse/unaligned", 200_000, [(70_000, content("sparse/unaligned", 100))])
    if big:
        size = 4 * GIB + MIB
        t.sparse(
            "big/over-4GiB",
            size,
            [
                (0, content("big/start", 4096)),
                (4 * GIB - 2048, content("big/4GiB-mark", 4096)),
                (size - 12288, content("big/end", 12288)),
            ],
        )
    # deep and nested directories
    deep = "deep/" + "/".join(f"d{i:02d}" for i in range(1, DEEP_DEPTH + 1))
    t.file(f"{deep}/bottom.txt", b"the bottom of deep/, 25 directories down\n")
    for a in ("a", "b", "c"):
        for b in ("x", "y"):
            for k in range(3):
                rel = f"nested/{a}/{b}/file-{k}.bin"
                t.file(rel, content(rel, 500 + 1000 * k))
    t.dir("nested/a/x/empty-leaf")
    # a directory of 10,000 small files (ext4 htree, XFS node directory, NTFS index allocation)
    for i in range(10_000):
        name = f"f{i:05d}"
        t.file(f"many/{name}", (name + "\n").encode() * (1 + i % 23))
    # symbolic links
    t.symlink("links/to-file", "../README.txt")
    t.symlink("links/to-dir", "../nested")
    t.symlink("links/absolute", "/etc/hostname")
    t.symlink("links/dangling", "../does/not/exist")
    t.symlink("links/to-unicode", "../unicode/café.txt")
    t.symlink("links/long-target", "../" + deep + "/bottom.txt")  # > 60 bytes: not an ext4 fast symlink
    t.symlink("links/very-long-target", "x/" * 500 + "end")  # 1003 bytes: XFS remote symlink
    # hard links: three names, one inode
    t.file("hardlinks/first", content("hardlinks", 5000))
    t.hardlink("hardlinks/second", "hardlinks/first")
    t.hardlink("hardlinks/sub/third", "hardlinks/first")
    # unicode names
    t.file("unicode/café.txt", "café\n".encode())
    t.file("unicode/日本語/ファイル.txt", "ファイル\n".encode())
    t.file("unicode/😀.txt", "emoji: 4 UTF-8 bytes, a UTF-16 surrogate pair\n".encode())
    t.file("unicode/Ελληνικά-ünïcödé", content("unicode/greek", 300))
    t.file("unicode/" + "長" * 85, b"85 characters, 255 UTF-8 bytes\n")
    # awkward names
    t.file("names/with space.txt", b"a space\n")
    t.file("names/dir with space/inside.txt", b"inside a directory with a space\n")
    t.file("names/:leading-colon", b"leading colon\n")
    t.file("names/colon:inside", b"colon inside\n")
    t.file("names/semi;colon", b"semicolon\n")
    t.file("names/dollar$", b"dollar\n")
    t.file("names/.hidden", b"dot file\n")
    t.file("names/-dash", b"dash\n")
    t.file("names/" + "n" * 255, b"a 255-byte name\n")
    # modes and owners
    t.file("perms/private", b"secret\n", mode=0o600, uid=1000, gid=1000)
    t.file("perms/exec.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    t.file("perms/readonly", b"read only\n", mode=0o444)
    t.file("perms/setuid", b"setuid\n", mode=0o4755)
    t.file("perms/other-group", b"group 1001\n", mode=0o640, uid=0, gid=1001)
    t.dir("perms/owned-dir", mode=0o750, uid=1000, gid=1000)
    t.file("perms/owned-dir/inside.txt", b"owned by 1000\n", mode=0o640, uid=1000, gid=1000)
    t.dir("perms/setgid-dir", mode=0o2775)
    t.dir("perms/sticky-dir", mode=0o1777)
    # timestamps outside 1970..2038
    t.file("timestamps/pre-1970", b"1969-01-01\n", mtime=-365 * 86_400)
    t.file("timestamps/epoch", b"1970-01-01T00:00:00Z\n", mtime=0)
    t.file("timestamps/after-2038", b"2038-01-19T03:14:09Z\n", mtime=2**31 + 1)
    t.file("timestamps/year-2100", b"2100-01-01\n", mtime=4_102_444_800)

    t.finish(ROOT_META)
    return make_manifest(out, t.extents, big=big, size64=size64)


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative POSIX path, lstat) of every entry under root, sorted by bytes, parents first."""
    stack = [""]
    while stack:
        rel = stack.pop()
        base = root / rel if rel else root
        with os.scandir(base) as it:
            names = sorted((e.name for e in it), key=lambda n: os.fsencode(n), reverse=True)
        kids = []
        for name in reversed(names):
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(root / child)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                kids.append(child)
        stack.extend(reversed(kids))


def make_manifest(
    tree: Path, extents: dict[str, list[list[int]]] | None = None, *, big: bool = False, size64: bool = False
) -> dict[str, Any]:
    """Describe every entry of ``tree`` (lstat and content), with what each filesystem keeps.

    The keys are described in the module docstring. ``extents`` gives the
    ``data_extents`` of the files written sparse.
    """
    tree = Path(tree)
    extents = extents or {}
    entries: list[dict[str, Any]] = []
    first_name: dict[tuple[int, int], str] = {}
    for rel, st in sorted(_walk(tree), key=lambda x: x[0].encode()):
        e: dict[str, Any] = {"path": rel}
        if stat.S_ISDIR(st.st_mode):
            e.update(type="dir", size=0)
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(tree / rel)
            e.update(type="symlink", size=len(os.fsencode(target)), target=target)
        elif stat.S_ISREG(st.st_mode):
            e.update(type="file", size=st.st_size, sha256=sha256_file(tree / rel))
        else:
            raise BuildError(f"{rel}: not a file, directory or symlink")
        e.update(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=st.st_mtime_ns // 1_000_000_000)
        if e["type"] == "file" and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in first_name:
                e["hardlink_of"] = first_name[key]
            else:
                first_name[key] = rel
        if rel in extents:
            e["data_extents"] = extents[rel]
        entries.append(e)
    rst = os.stat(tree)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "tree": str(tree.resolve()),
        "options": {"big": big, "size64": size64},
        "root": {
            "mode": stat.S_IMODE(rst.st_mode),
            "uid": rst.st_uid,
            "gid": rst.st_gid,
            "mtime": rst.st_mtime_ns // 1_000_000_000,
        },
        "entries": entries,
    }
    manifest["expect"] = expectations(entries)
    return manifest


# --------------------------------------------------------------------------
# what each filesystem keeps

ALL_FIELDS = ["type", "size", "sha256", "target", "mode", "uid", "gid", "mtime", "hardlink_of", "data_extents"]


def xfs_name_ok(name: str) -> bool:
    """Whether mkfs.xfs 6.1's protofile can carry this directory entry name.

    Tokens are split at blanks, a token starting with ':' starts a comment,
    and '$' alone ends a directory.
    """
    return not (re.search(r"\s", name) or name.startswith(":") or name == "$")


def xfs_target_ok(target: str) -> bool:
    """Whether a symlink target survives the protofile's tokenizer."""
    return not (re.search(r"\s", target) or target.startswith(":"))


def xfs_omitted(entries: list[dict[str, Any]]) -> list[str]:
    """Paths that an XFS image built by mkfs.xfs -p cannot hold (with everything under them)."""
    out: list[str] = []
    bad_dirs: list[str] = []
    for e in entries:
        path = e["path"]
        if any(path.startswith(d + "/") for d in bad_dirs):
            out.append(path)
            continue
        bad = not xfs_name_ok(path.rsplit("/", 1)[-1])
        if e["type"] == "symlink" and not xfs_target_ok(e["target"]):
            bad = True
        if e["type"] == "file" and e["size"] > XFS_PROTO_MAX_FILE:
            bad = True
        if bad:
            out.append(path)
            if e["type"] == "dir":
                bad_dirs.append(path)
    return out


def expectations(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per filesystem: which manifest keys an image keeps, which entries are missing or differ.

    For each fs: ``fields`` (keys to compare for every present entry),
    ``absent`` (paths not in the image), ``differ`` ({path: {key: value in
    the image}} overriding the manifest), ``extra`` (names the filesystem
    adds at its root), ``root`` (root directory keys kept), ``holes``
    (data_extents are real holes), ``hardlinks``, ``symlinks`` ("posix": a
    symlink inode; "interix": ntfs-3g's IntxLNK system file), and ``notes``.
    """
    xfs_absent = xfs_omitted(entries)
    absent = set(xfs_absent)
    xfs_differ: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e["path"] in absent:
            continue
        if "hardlink_of" in e:
            xfs_differ.setdefault(e["path"], {})["hardlink_of"] = None
        if e["type"] == "dir" and e["mode"] & 0o1000:
            xfs_differ.setdefault(e["path"], {})["mode"] = e["mode"] & ~0o1000
    return {
        "ext4": {
            "fields": list(ALL_FIELDS),
            "absent": [],
            "differ": {},
            "extra": ["lost+found"],
            "root": ["mode", "uid", "gid", "mtime"],
            "holes": True,
            "hardlinks": True,
            "symlinks": "posix",
            "notes": [
                "mkfs.ext4 -d (e2fsprogs 1.47.0) with -O inline_data: files up to ~130 bytes are inline",
                "build.py repairs what populate_fs gets wrong with inline_data: trailing holes (size), "
                "a zero block 0 allocated for a leading hole, an all-hole file left inline; and times "
                "past 2038 (populate_fs drops the epoch bits)",
                "e2fsck -fyD afterwards: many/ is an htree directory, small directories are linear",
            ],
        },
        "xfs": {
            "fields": [f for f in ALL_FIELDS if f not in ("hardlink_of", "data_extents")],
            "absent": xfs_absent,
            "differ": xfs_differ,
            "extra": [],
            "root": ["mode", "uid", "gid", "mtime"],
            "holes": False,
            "hardlinks": False,
            "symlinks": "posix",
            "notes": [
                "mkfs.xfs 6.1 -p protofile: names with blanks, a leading ':' or '$' alone cannot be written",
                "holes are written as allocated zeros; hard links become separate files (nlink 1)",
                f"files larger than {XFS_PROTO_MAX_FILE} bytes cannot be written (one read() into memory)",
                "the sticky bit cannot be written (mode is [-u][-g]ooo)",
                "mtimes are set afterwards with xfs_db -x (protofile has none; atime = mtime, ctime and "
                "crtime stay the build's clock)",
                f"symlink targets over {XFS_INLINE_SYMLINK_MAX} bytes: mkfs.xfs 6.1 writes the remote block "
                "without its header/CRC; build.py rewrites the block as the kernel would",
            ],
        },
        "ntfs": {
            "fields": ["type", "size", "sha256", "target", "mtime", "hardlink_of", "data_extents"],
            "absent": [],
            "differ": {},
            "extra": [],
            "root": ["mtime"],
            "holes": True,
            "hardlinks": True,
            "symlinks": "interix",
            "notes": [
                "copied through ntfs-3g (FUSE) without a user mapping: no uid/gid/mode on disk "
                "(ntfs-3g shows 0:0 and 0777)",
                "symlinks are ntfs-3g's Interix symlinks: a file with the SYSTEM attribute whose $DATA "
                "is 'IntxLNK\\x01' + UTF-16LE target (not an IO_REPARSE_TAG_SYMLINK reparse point)",
                "names are in the POSIX namespace (no DOS 8.3 names)",
                "holes are NTFS sparse runs (cluster granularity, 4 KiB); sparse files have SPARSE_FILE set",
                "mtime is in $STANDARD_INFORMATION; the $FILE_NAME copies (MFT record and parent index) "
                "keep the copy's clock",
            ],
        },
    }


# --------------------------------------------------------------------------
# images


def _tree_stats(tree: Path) -> dict[str, int]:
    """Counts and sizes used to choose an image size."""
    files = dirs = others = allocated = apparent = 0
    for _, st in _walk(tree):
        if stat.S_ISDIR(st.st_mode):
            dirs += 1
        elif stat.S_ISREG(st.st_mode):
            files += 1
            allocated += -(-st.st_blocks * 512 // BLOCK) * BLOCK
            apparent += -(-st.st_size // BLOCK) * BLOCK
        else:
            others += 1
    return {"files": files, "dirs": dirs, "others": others, "allocated": allocated, "apparent": apparent}


def default_size_mib(fs: str, tree: Path | None) -> int:
    """A filesystem size (MiB) that holds the tree with room to spare."""
    if tree is None:
        return 64
    s = _tree_stats(tree)
    inodes = s["files"] + s["dirs"] + s["others"]
    if fs == "ext4":
        need = s["allocated"] * 1.25 + (s["dirs"] + s["others"]) * BLOCK + inodes * 300
        return max(32, int(need / MIB) + 24)
    if fs == "xfs":
        big = 0
        for _, st in _walk(tree):
            if stat.S_ISREG(st.st_mode) and st.st_size > XFS_PROTO_MAX_FILE:
                big += -(-st.st_size // BLOCK) * BLOCK
        # holes are written as zeros: the apparent size counts
        need = (s["apparent"] - big) * 1.25 + inodes * 600 + s["dirs"] * BLOCK
        return max(XFS_MIN_MIB, int(need / MIB) + 64)
    if fs == "ntfs":
        need = s["allocated"] * 1.25 + inodes * 1024 * 1.5 + s["dirs"] * BLOCK * 2
        return max(64, int(need / MIB) + 48)
    return 64


def build_image(
    fs: str,
    out: Path,
    tree: Path | None = None,
    layout: str = "bare",
    size_mib: int | None = None,
) -> dict[str, Any]:
    """Build one raw image and return its description (the JSON line ``image`` prints).

    ``fs`` is ext4, xfs or ntfs (``tree`` required) or one of
    :data:`SIGNATURE_KINDS`. ``layout`` bare puts the filesystem at byte 0;
    gpt and mbr put it in partition 2 at 2 MiB, after a 1 MiB partition 1.
    ``size_mib`` is the filesystem's (partition's) size.
    """
    if fs in TREE_FILESYSTEMS and tree is None:
        raise BuildError(f"--fs {fs} needs --tree")
    if fs not in TREE_FILESYSTEMS and fs not in SIGNATURE_KINDS:
        raise BuildError(f"unknown --fs {fs}")
    if layout not in LAYOUTS:
        raise BuildError(f"unknown --layout {layout}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tree = Path(tree).resolve() if tree is not None else None
    t0 = time.monotonic()
    size_mib = size_mib or default_size_mib(fs, tree)
    fs_size = size_mib * MIB
    offset = 0 if layout == "bare" else PART_OFFSET
    part_start = offset // 512
    bare = out if layout == "bare" else out.with_name(out.name + ".fs.tmp")
    for p in {out, bare}:
        if p.exists():
            p.unlink()
    omitted: list[str] = []
    try:
        with open(bare, "wb") as f:
            f.truncate(fs_size)
        if fs not in TREE_FILESYSTEMS:
            _build_signature(fs, bare)
        elif tree is None:
            raise BuildError(f"--fs {fs} needs --tree")
        elif fs == "ext4":
            _build_ext4(bare, tree)
        elif fs == "xfs":
            omitted = _build_xfs(bare, tree)
        else:
            _build_ntfs(bare, tree, part_start)
        if layout != "bare":
            _partition(out, fs, layout, fs_size)
            fd = os.open(out, os.O_WRONLY)
            try:
                copy_sparse(bare, fd, offset)
            finally:
                os.close(fd)
    finally:
        if bare != out and bare.exists():
            bare.unlink()
    return {
        "path": str(out.resolve()),
        "fs": fs,
        "layout": layout,
        "size": out.stat().st_size,
        "partition": None if layout == "bare" else 2,
        "offset": offset,
        "fs_size": fs_size,
        "disk_usage": disk_usage(out),
        "seconds": round(time.monotonic() - t0, 2),
        "tree": str(tree) if tree else None,
        "omitted": omitted,
    }


def _partition(out: Path, fs: str, layout: str, fs_size: int) -> None:
    """A sparse disk with partition 1 (1 MiB at 1 MiB, left zero) and partition 2 (at 2 MiB)."""
    disk = PART_OFFSET + fs_size + DISK_TAIL
    with open(out, "wb") as f:
        f.truncate(disk)
    gpt_type, mbr_type = PART_TYPES[fs]
    p1_gpt, p1_mbr = PART1_TYPES
    if layout == "gpt":
        script = (
            "label: gpt\n"
            f"label-id: {DISK_GUID.upper()}\n"
            "unit: sectors\n"
            f"start={PART1_OFFSET // 512}, size={PART1_SIZE // 512}, type={p1_gpt}, "
            f"uuid={_uuid('part1')}, name=\"reserved\"\n"
            f"start={PART_OFFSET // 512}, size={fs_size // 512}, type={gpt_type}, "
            f"uuid={_uuid('part2')}, name=\"{LABEL}\"\n"
        )
    else:
        script = (
            "label: dos\n"
            f"label-id: {MBR_ID}\n"
            "unit: sectors\n"
            f"start={PART1_OFFSET // 512}, size={PART1_SIZE // 512}, type={p1_mbr}\n"
            f"start={PART_OFFSET // 512}, size={fs_size // 512}, type={mbr_type}\n"
        )
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", str(out)],
        input=script.encode())


def _uuid(tag: str) -> str:
    """A fixed UUID derived from a tag."""
    return str(uuid.uuid5(uuid.UUID(DISK_GUID), tag)).upper()


# ---- ext4


def _build_ext4(img: Path, tree: Path) -> None:
    """mkfs.ext4 -d with inline_data, then repair what populate_fs gets wrong (see expectations)."""
    s = _tree_stats(tree)
    inodes = s["files"] + s["dirs"] + s["others"] + 1024
    root = os.stat(tree)
    run(
        [
            "mkfs.ext4", "-q", "-F", "-b", str(BLOCK), "-I", "256", "-N", str(inodes),
            "-O", "inline_data", "-L", LABEL, "-U", FS_UUID,
            "-E", f"hash_seed={HASH_SEED},root_owner={root.st_uid}:{root.st_gid}",
            "-d", str(tree), str(img),
        ],
        env={"E2FSPROGS_FAKE_TIME": str(BASE_MTIME)},
    )
    _ext4_fix_sparse(img, tree)
    mtime = root.st_mtime_ns // 1_000_000_000
    # populate_fs leaves the root as mke2fs made it (0755, now)
    cmds = [
        f"sif / mode 0{stat.S_IFDIR | stat.S_IMODE(root.st_mode):o}",
        f"sif / mtime @{mtime}",
        f"sif / atime @{mtime}",
    ]
    # populate_fs writes the low 32 bits of a time only (no epoch bits in *time_extra):
    # a time past 2038-01-19 comes out in 1901..1970; debugfs sets both
    for rel, st in _walk(tree):
        t = st.st_mtime_ns // 1_000_000_000
        if not -(2**31) <= t < 2**31:
            cmds.append(f"sif {_dq(rel)} mtime @{t}")
    _debugfs(img, cmds, write=True)
    # populate_fs links entries into plain linear directories; e2fsck -D indexes the
    # big ones (an htree for many/, as the kernel would have) and compacts the rest
    proc = run(["e2fsck", "-fyD", str(img)], check=False)
    if proc.returncode not in (0, 1):
        raise BuildError(f"e2fsck -fyD exited {proc.returncode}:\n{proc.stdout.decode(errors='replace')[-3000:]}")


def _dq(path: str) -> str:
    """A path quoted for a debugfs command line."""
    if '"' in path or "\n" in path:
        raise BuildError(f"debugfs cannot quote {path!r}")
    return '"/' + path + '"'


def _debugfs(img: Path, cmds: list[str], write: bool = False) -> list[tuple[str, str]]:
    """Run debugfs commands from a file; return (command, its stdout) pairs."""
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False, encoding="utf-8") as f:
        f.write("\n".join(cmds) + "\n")
        name = f.name
    try:
        args = ["debugfs"] + (["-w"] if write else []) + ["-f", name, str(img)]
        proc = run(args)
    finally:
        os.unlink(name)
    out = proc.stdout.decode("utf-8", errors="surrogateescape")
    pairs: list[tuple[str, str]] = []
    for chunk in re.split(r"^debugfs: ", out, flags=re.M)[1:]:
        cmd, _, rest = chunk.partition("\n")
        pairs.append((cmd, rest))
    errs = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if not ln.startswith("debugfs ")]
    if write and errs:
        raise BuildError("debugfs: " + "\n".join(errs[:20]))
    return pairs


_STAT_RE = {
    "flags": re.compile(r"Flags: (0x[0-9a-f]+)"),
    "size": re.compile(r"Size: (\d+)\s*$", re.M),
    "inline": re.compile(r"Size of inline data: (\d+)"),
}


def _ext4_fix_sparse(img: Path, tree: Path) -> None:
    """Repair sparse files after mkfs.ext4 -d with inline_data (e2fsprogs 1.47.0).

    populate_fs creates every file inline, then converts it on the first
    write past the inline area: a file whose data ends before its size loses
    its trailing hole (i_size = end of the last data), a file that starts
    with a hole gets a zero block 0, and a file with no data at all stays
    inline with the full i_size. Here: i_size is set back, block 0 punched,
    and the all-hole file made an empty extent-mapped file.
    """
    todo: dict[str, tuple[int, list[tuple[int, int]]]] = {}
    seen: set[tuple[int, int]] = set()
    for rel, st in _walk(tree):
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        if st.st_blocks * 512 >= st.st_size:
            continue
        fd = os.open(tree / rel, os.O_RDONLY)
        try:
            regions = data_regions(fd, st.st_size)
        finally:
            os.close(fd)
        covered = sum(n for _, n in regions)
        if covered < st.st_size:
            todo[rel] = (st.st_size, regions)
    if not todo:
        return
    stats = dict(_debugfs(img, [f"stat {_dq(rel)}" for rel in todo]))
    cmds: list[str] = []
    for rel, (size, regions) in todo.items():
        out = stats.get(f"stat {_dq(rel)}", "")
        flags_m = _STAT_RE["flags"].search(out)
        size_m = _STAT_RE["size"].search(out)
        if not flags_m or not size_m:
            raise BuildError(f"debugfs stat {rel}: cannot parse:\n{out}")
        flags = int(flags_m.group(1), 16)
        q = _dq(rel)
        if flags & 0x10000000 and not regions:  # EXT4_INLINE_DATA_FL on a file with no data at all
            cmds += [
                f"sif {q} flags 0x80000",  # EXT4_EXTENTS_FL
                f"sif {q} block[0] 0xF30A",  # extent header: magic, 0 entries
                f"sif {q} block[1] 4",  # max 4 entries, depth 0
                f"sif {q} block[2] 0",
                f"ea_rm {q} system.data",
            ]
        elif not flags & 0x10000000 and regions and regions[0][0] >= BLOCK:
            cmds.append(f"punch {q} 0 {regions[0][0] // BLOCK - 1}")
        if int(size_m.group(1)) != size:
            cmds.append(f"sif {q} size {size}")
    if cmds:
        _debugfs(img, cmds, write=True)


# ---- xfs


def _build_xfs(img: Path, tree: Path) -> list[str]:
    """mkfs.xfs -p with a generated protofile, then mtimes with xfs_db -x. Returns the omitted paths."""
    with tempfile.TemporaryDirectory(prefix="xfsproto-") as tmp:
        if re.search(r"\s", tmp):
            raise BuildError(f"temporary directory {tmp!r} has a blank: the protofile cannot name it")
        proto, omitted, mtimes = _xfs_protofile(tree, Path(tmp))
        proto_path = Path(tmp) / "proto"
        proto_path.write_bytes(proto)
        run(["mkfs.xfs", "-q", "-f", "-m", f"bigtime=1,uuid={FS_UUID}", "-i", "size=512", "-L", LABEL,
             "-p", str(proto_path), str(img)])
    # The protofile has no times: every inode gets mkfs's clock. With bigtime
    # (asked for above) xfs_db shows the 64-bit timestamp as core.*.sec:
    # nanoseconds since 1901-12-13T20:45:52Z.
    cmds: list[str] = []
    for rel, mtime in mtimes:
        raw = (mtime + 2**31) * 1_000_000_000
        cmds += [f"path /{rel}", f"write core.mtime.sec {raw}", f"write core.atime.sec {raw}"]
    _xfs_db_script(img, cmds, expert=True)
    remote = [(rel, t) for rel, t in _xfs_symlinks(tree, omitted) if len(os.fsencode(t)) > XFS_INLINE_SYMLINK_MAX]
    if remote:
        _xfs_fix_remote_symlinks(img, remote)
    return omitted


def _xfs_symlinks(tree: Path, omitted: list[str]) -> list[tuple[str, str]]:
    skip = set(omitted)
    return [(rel, os.readlink(tree / rel)) for rel, st in _walk(tree) if stat.S_ISLNK(st.st_mode) and rel not in skip]


def _xfs_geometry(img: Path) -> dict[str, Any]:
    """blocksize, agblocks and uuid from superblock 0."""
    out = run(["xfs_db", "-r", "-f", "-c", "sb 0", "-c", "print blocksize agblocks uuid meta_uuid", str(img)]).stdout
    text = out.decode()
    geo: dict[str, Any] = {}
    for key in ("blocksize", "agblocks"):
        m = re.search(rf"^{key} = (\d+)", text, re.M)
        if not m:
            raise BuildError(f"xfs_db sb 0: no {key}:\n{text}")
        geo[key] = int(m.group(1))
    m = re.search(r"^uuid = (\S+)", text, re.M)
    geo["uuid"] = uuid.UUID(m.group(1)) if m else uuid.UUID(FS_UUID)
    m = re.search(r"^meta_uuid = (\S+)", text, re.M)
    meta = m.group(1) if m else ""
    geo["meta_uuid"] = uuid.UUID(meta) if re.fullmatch(r"[0-9a-f-]{36}", meta) and int(uuid.UUID(meta)) else geo["uuid"]
    return geo


def _xfs_fix_remote_symlinks(img: Path, links: list[tuple[str, str]]) -> None:
    """Give remote symlink blocks the v5 header that mkfs.xfs 6.1's protofile code leaves out.

    mkfs.xfs 6.1 writes a target longer than the inode's literal area (336
    bytes with 512-byte inodes) as plain data: no xfs_dsymlink_hdr, no CRC,
    which xfs_repair and the kernel reject. Here each such block is rewritten
    as the kernel writes it: magic XSLM, offset 0, length, CRC-32C, the
    filesystem's UUID, the owner inode, the block's daddr, then the target.
    """
    geo = _xfs_geometry(img)
    bsize, agblocks = geo["blocksize"], geo["agblocks"]
    cmds: list[str] = []
    for i, (rel, _) in enumerate(links):
        cmds += [f"echo @@{i}", f"path /{rel}", "print v3.inumber", "bmap"]
    out = _xfs_db_script(img, cmds)
    chunks = _xfs_chunks(out)
    fd = os.open(img, os.O_RDWR)
    try:
        for i, (rel, target) in enumerate(links):
            text = chunks.get(i, "")
            ino = re.search(r"v3.inumber = (\d+)", text)
            ext = re.findall(r"data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d+)", text)
            data = os.fsencode(target)
            if not ino or len(ext) != 1 or int(ext[0][0]) != 0 or len(data) > bsize - 56:
                raise BuildError(f"xfs remote symlink {rel}: cannot fix:\n{text}")
            agno, agbno = int(ext[0][1]), int(ext[0][2])
            fsb = agno * agblocks + agbno
            daddr = fsb * bsize // 512
            block = bytearray(bsize)
            struct.pack_into(">III", block, 0, 0x58534C4D, 0, len(data))  # XSLM, offset, bytes
            block[16:32] = geo["meta_uuid"].bytes
            struct.pack_into(">QQQ", block, 32, int(ino.group(1)), daddr, 0)  # owner, blkno, lsn
            block[56:56 + len(data)] = data
            struct.pack_into("<I", block, 12, _crc32c(bytes(block)))
            os.pwrite(fd, bytes(block), fsb * bsize)
    finally:
        os.close(fd)


def _xfs_db_script(img: Path, cmds: list[str], expert: bool = False) -> str:
    """Run xfs_db commands from a script file; stdout as text (errors raise)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".xfsdb", delete=False) as f:
        f.write("\n".join(cmds).encode() + b"\n")
        script = f.name
    try:
        proc = run(["xfs_db", "-x" if expert else "-r", "-f", "-c", f"source {script}", str(img)])
    finally:
        os.unlink(script)
    errs = proc.stderr.decode(errors="replace").strip()
    if errs:
        raise BuildError(f"xfs_db: {errs[:2000]}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def _xfs_chunks(out: str) -> dict[int, str]:
    """Split xfs_db output at the `echo @@N` markers."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^@@(\d+) ?\n(.*?)(?=^@@\d+ ?\n|\Z)", out, re.S | re.M)}


def _xfs_protofile(tree: Path, tmp: Path) -> tuple[bytes, list[str], list[tuple[str, int]]]:
    """The protofile for ``tree``; the paths it leaves out; (path, mtime) to set, root first.

    File contents are named through symlinks in ``tmp`` (the source path is a
    token too, so it must not have blanks).
    """
    src = tmp / "src"
    src.mkdir()
    lines: list[bytes] = [b"strongroom", b"0 0"]
    omitted: list[str] = []
    mtimes: list[tuple[str, int]] = []
    counter = 0

    def spec(st: os.stat_result) -> bytes:
        m = stat.S_IMODE(st.st_mode)
        kind = {stat.S_IFDIR: "d", stat.S_IFREG: "-", stat.S_IFLNK: "l"}[stat.S_IFMT(st.st_mode)]
        u = "u" if m & 0o4000 else "-"
        g = "g" if m & 0o2000 else "-"
        return f"{kind}{u}{g}{m & 0o777:03o} {st.st_uid} {st.st_gid}".encode()

    def walk_dir(rel: str, depth: int) -> None:
        nonlocal counter
        base = tree / rel if rel else tree
        names = sorted(os.listdir(base), key=os.fsencode)
        for name in names:
            child = f"{rel}/{name}" if rel else name
            p = tree / child
            st = os.lstat(p)
            ind = b" " * depth
            bad = not xfs_name_ok(name)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                if bad or not xfs_target_ok(target):
                    omitted.append(child)
                    continue
                lines.append(ind + os.fsencode(name) + b" " + spec(st) + b" " + os.fsencode(target))
            elif stat.S_ISREG(st.st_mode):
                if bad or st.st_size > XFS_PROTO_MAX_FILE:
                    omitted.append(child)
                    continue
                counter += 1
                link = src / f"{counter:06d}"
                os.symlink(p.resolve(), link)
                lines.append(ind + os.fsencode(name) + b" " + spec(st) + b" " + os.fsencode(str(link)))
            elif stat.S_ISDIR(st.st_mode):
                if bad:
                    omitted.append(child)
                    omitted.extend(f"{child}/{r}" for r, _ in _walk(p))
                    continue
                lines.append(ind + os.fsencode(name) + b" " + spec(st))
                walk_dir(child, depth + 1)
                lines.append(ind + b" $")
            else:
                omitted.append(child)
                continue
            mtimes.append((child, st.st_mtime_ns // 1_000_000_000))

    root = os.stat(tree)
    lines.append(spec(root))
    walk_dir("", 1)
    lines.append(b"$")
    mtimes.append(("", root.st_mtime_ns // 1_000_000_000))
    return b"\n".join(lines) + b"\n", omitted, mtimes


# ---- ntfs


@contextlib.contextmanager
def ntfs_mount(img: Path, readonly: bool = False) -> Iterator[Path]:
    """Mount an NTFS image file with ntfs-3g (FUSE, foreground) on a temporary directory.

    Unmounts with fusermount -u (umount as a fallback) and waits for ntfs-3g
    to exit, so that everything is on disk when the block ends.
    """
    if not os.path.exists("/dev/fuse"):
        raise BuildError("/dev/fuse is missing: ntfs-3g cannot mount the image")
    mnt = Path(tempfile.mkdtemp(prefix="ntfs-mnt-"))
    opts = "no_detach" + (",ro" if readonly else "")
    log = tempfile.TemporaryFile()  # not a pipe: nobody reads it while ntfs-3g runs
    proc = subprocess.Popen([tool("ntfs-3g"), "-o", opts, str(img), str(mnt)], stdout=log, stderr=log)

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace").strip()

    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                raise BuildError(f"ntfs-3g could not mount {img} (FUSE): {output()}")
            if time.monotonic() > deadline:
                raise BuildError(f"ntfs-3g did not mount {img} within 20 s: {output()}")
            time.sleep(0.02)
        yield mnt
    finally:
        if os.path.ismount(mnt):
            fm = shutil.which("fusermount") or shutil.which("fusermount3")
            r = subprocess.run([fm, "-u", str(mnt)] if fm else ["umount", str(mnt)], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            mnt.rmdir()
        log_text = output()
        log.close()
    if proc.returncode != 0:
        raise BuildError(f"ntfs-3g exited {proc.returncode}: {log_text}")


def _build_ntfs(img: Path, tree: Path, part_start: int) -> None:
    """mkntfs, then copy the tree in through ntfs-3g: data regions only, then links and mtimes."""
    args = ["mkntfs", "-F", "-Q", "-q", "-s", "512", "-c", str(BLOCK), "-L", LABEL]
    args += ["-p", str(part_start), "-H", "255", "-S", "63", str(img)]
    run(args)
    with ntfs_mount(img) as mnt:
        copy_tree_sparse(tree, mnt, owners=False)


def copy_tree_sparse(src: Path, dst: Path, owners: bool = True) -> None:
    """Copy a tree: data regions only (holes stay holes), hard links, symlinks, mtimes (and owners/modes)."""
    firsts: dict[tuple[int, int], Path] = {}
    mtimes: list[tuple[Path, int]] = []
    for rel, st in _walk(src):
        s, d = src / rel, dst / rel
        if stat.S_ISDIR(st.st_mode):
            d.mkdir()
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in firsts:
                os.link(firsts[key], d)
                continue
            firsts[key] = d
            fd = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                copy_sparse(s, fd, 0)
                os.ftruncate(fd, st.st_size)
            finally:
                os.close(fd)
        if owners:
            os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(d, stat.S_IMODE(st.st_mode))
        mtimes.append((d, st.st_mtime_ns))
    mtimes.append((dst, os.stat(src).st_mtime_ns))
    for d, ns in sorted(mtimes, key=lambda x: -len(x[0].parts)):
        os.utime(d, ns=(ns, ns), follow_symlinks=False)


# ---- signatures only


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as btrfs uses it."""
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_CRC32C_TABLE: list[int] = []


def _crc32c_table() -> list[int]:
    if not _CRC32C_TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC32C_TABLE.append(c)
    return _CRC32C_TABLE


def _lvm_crc(data: bytes) -> int:
    """LVM2's label checksum: CRC-32 (zlib's polynomial) from 0xf597a6cf, no final inversion."""
    return (~zlib.crc32(data, ~0xF597A6CF & 0xFFFFFFFF)) & 0xFFFFFFFF


def _build_signature(kind: str, img: Path) -> None:
    """Write the documented on-disk magic (or run mkswap) so that a reader can name what it refuses."""
    size = img.stat().st_size
    fd = os.open(img, os.O_WRONLY)
    try:
        if kind == "unformatted":
            pass
        elif kind == "luks":
            os.pwrite(fd, _luks2_header(), 0)
        elif kind == "lvm":
            os.pwrite(fd, _lvm2_label(size), 512)
        elif kind == "btrfs":
            os.pwrite(fd, _btrfs_super(size), 65536)
        elif kind == "zfs":
            label = _zfs_label()
            for off in (0, 256 * 1024, size - 512 * 1024, size - 256 * 1024):
                os.pwrite(fd, label, off)
        elif kind == "swap":
            os.close(fd)
            fd = -1
            if shutil.which("mkswap") or os.path.exists("/usr/sbin/mkswap") or os.path.exists("/sbin/mkswap"):
                run(["mkswap", "-p", "4096", "-U", FS_UUID, "-L", LABEL, str(img)])
            else:
                with open(img, "r+b") as f:
                    f.seek(4096 - 10)
                    f.write(b"SWAPSPACE2")
    finally:
        if fd >= 0:
            os.close(fd)


def _luks2_header() -> bytes:
    """A LUKS2 binary header (magic, version 2, SHA-256 checksum) and its JSON area; 16 KiB."""
    hdr_size = 16384
    js = json.dumps(
        {
            "keyslots": {},
            "tokens": {},
            "segments": {},
            "digests": {},
            "config": {"json_size": str(hdr_size - 4096), "keyslots_size": "0"},
        }
    ).encode()
    head = bytearray(4096)
    head[0:6] = b"LUKS\xba\xbe"
    struct.pack_into(">HQQ", head, 6, 2, hdr_size, 1)  # version, hdr_size, seqid
    head[72:72 + 6] = b"sha256"  # checksum_alg (label[48] at 24 stays empty)
    head[104:104 + 64] = content("luks/salt", 64)
    head[168:168 + 36] = FS_UUID.encode()
    struct.pack_into(">Q", head, 256, 0)  # hdr_offset
    area = bytes(head) + js + bytes(hdr_size - 4096 - len(js))
    digest = hashlib.sha256(area).digest()  # computed with the csum field zero
    head[448:448 + 32] = digest
    return bytes(head) + area[4096:]


def _lvm2_label(size: int) -> bytes:
    """LVM2 label sector (goes at sector 1): LABELONE, CRC, 'LVM2 001', a PV header."""
    sector = bytearray(512)
    sector[0:8] = b"LABELONE"
    struct.pack_into("<Q", sector, 8, 1)  # sector_xl: this label is in sector 1
    struct.pack_into("<I", sector, 20, 32)  # offset_xl: pv_header at 32
    sector[24:32] = b"LVM2 001"
    pv_uuid = (content("lvm/pvid", 32).hex()[:32]).encode()
    sector[32:64] = pv_uuid
    struct.pack_into("<Q", sector, 64, size)  # device_size_xl
    # data areas: one at 1 MiB to the end, then the terminator; metadata areas: one at 4 KiB, terminator
    struct.pack_into("<QQ", sector, 72, MIB, 0)
    struct.pack_into("<QQ", sector, 88, 0, 0)
    struct.pack_into("<QQ", sector, 104, 4096, MIB - 4096)
    struct.pack_into("<QQ", sector, 120, 0, 0)
    struct.pack_into("<I", sector, 16, _lvm_crc(bytes(sector[20:])))
    return bytes(sector)


def _btrfs_super(size: int) -> bytes:
    """A btrfs superblock (4 KiB at 64 KiB): magic _BHRfS_M at +64, CRC-32C over bytes 32..4095."""
    sb = bytearray(4096)
    sb[32:48] = uuid.UUID(FS_UUID).bytes  # fsid
    struct.pack_into("<QQ", sb, 48, 65536, 0)  # bytenr, flags
    sb[64:72] = b"_BHRfS_M"
    struct.pack_into("<QQQQQQQQ", sb, 72, 1, 0, 0, 0, 0, size, 0, 0)  # generation .. bytes_used
    struct.pack_into("<QQ", sb, 136, 6, 1)  # root_dir_objectid, num_devices
    struct.pack_into("<IIII", sb, 152, 4096, 16384, 4096, 0)  # sectorsize, nodesize, leafsize, stripesize
    struct.pack_into("<H", sb, 196, 0)  # csum_type crc32c
    sb[299:299 + len(LABEL)] = LABEL.encode()
    struct.pack_into("<I", sb, 0, _crc32c(bytes(sb[32:])))
    return bytes(sb)


def _zfs_label() -> bytes:
    """One 256 KiB ZFS vdev label: blank, boot header, empty nvlist, 128 uberblocks (magic 0x00bab10c)."""
    label = bytearray(256 * 1024)
    for i in range(128):
        off = 128 * 1024 + i * 1024
        # ub_magic, ub_version (5000), ub_txg, ub_guid_sum, ub_timestamp
        struct.pack_into("<QQQQQ", label, off, 0x00BAB10C, 5000, 4 + i, 0x1234_5678_9ABC_DEF0, BASE_MTIME)
    return bytes(label)


# --------------------------------------------------------------------------
# checks (selfcheck): read each image back with the filesystem's own tools


class Checker:
    """Collects failed checks."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def ok(self, cond: bool, what: str) -> None:
        """Record one check."""
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            _log(f"FAIL {what}")

    def eq(self, got: Any, want: Any, what: str) -> None:
        """Record an equality check."""
        self.ok(got == want, f"{what}: got {got!r}, want {want!r}")


def _extract_partition(img: Path, offset: int, size: int, dst: Path) -> None:
    with open(dst, "wb") as f:
        f.truncate(size)
        with open(img, "rb") as s:
            for off, n in data_regions(s.fileno(), offset + size):
                start, end = max(off, offset), min(off + n, offset + size)
                pos = start
                while pos < end:
                    buf = os.pread(s.fileno(), min(end - pos, 4 * MIB), pos)
                    os.pwrite(f.fileno(), buf, pos - offset)
                    pos += len(buf)


def _present(manifest: dict[str, Any], fs: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    exp = manifest["expect"][fs]
    absent = set(exp["absent"])
    return [e for e in manifest["entries"] if e["path"] not in absent], exp


def _want(e: dict[str, Any], exp: dict[str, Any], key: str) -> Any:
    return exp["differ"].get(e["path"], {}).get(key, e.get(key))


def _fields(exp: dict[str, Any], e: dict[str, Any]) -> list[str]:
    return [f for f in exp["fields"] if f in e or f in exp["differ"].get(e["path"], {})]


def check_ext4(img: Path, manifest: dict[str, Any], c: Checker, full: bool = True) -> None:
    """e2fsck -fn; debugfs stat of every entry, ex of sparse files; content by debugfs dump.

    Files over 256 MiB are hashed from their extents read straight from the
    image instead (dump would write every hole out). ``full=False`` skips
    the dumps.
    """
    run(["e2fsck", "-fn", str(img)])
    c.passed += 1
    entries, exp = _present(manifest, "ext4")
    outs = dict(_debugfs(img, [f"stat {_dq(e['path'])}" for e in entries] + ["stat /", "ls -p /"]))
    inodes: dict[str, int] = {}
    types = {"directory": "dir", "regular": "file", "symlink": "symlink"}
    for e in entries:
        out = outs.get(f"stat {_dq(e['path'])}", "")
        m = re.search(r"Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)", out)
        if not m:
            c.ok(False, f"ext4 {e['path']}: not found")
            continue
        inodes[e["path"]] = int(m.group(1))
        c.eq(types.get(m.group(2), m.group(2)), e["type"], f"ext4 {e['path']} type")
        got = _ext4_stat(out)
        for f in ("mode", "uid", "gid", "mtime"):
            if f in _fields(exp, e):
                c.eq(got[f], _want(e, exp, f), f"ext4 {e['path']} {f}")
        if e["type"] != "dir":
            c.eq(got["size"], e["size"], f"ext4 {e['path']} size")
        if e["type"] == "symlink" and "Fast link dest" in out:
            c.eq(got["target"], e["target"], f"ext4 {e['path']} target")
    root = _ext4_stat(outs.get("stat /", ""))
    for f in exp["root"]:
        c.eq(root[f], manifest["root"][f], f"ext4 / {f}")
    for e in entries:
        if "hardlink_of" in e:
            c.eq(inodes.get(e["path"]), inodes.get(e["hardlink_of"]), f"ext4 {e['path']} hard link")
    c.ok("/lost+found/" in outs.get("ls -p /", ""), "ext4 lost+found")
    many = outs.get(f"stat {_dq('many')}")
    if many is not None:
        flags = _STAT_RE["flags"].search(many)
        c.ok(flags is not None and int(flags.group(1), 16) & 0x1000 != 0, "ext4 many/ is an htree (EXT4_INDEX_FL)")
    # holes: the extent map must be exactly the blocks the data covers
    sparse = [e for e in entries if "data_extents" in e]
    ex = dict(_debugfs(img, [f"ex {_dq(e['path'])}" for e in sparse]))
    bs = BLOCK
    for e in sparse:
        want: set[int] = set()
        for off, n in e["data_extents"]:
            want.update(range(off // bs, (off + n - 1) // bs + 1))
        got_map = _ext4_extents(ex.get(f"ex {_dq(e['path'])}", ""))
        got_blocks: set[int] = set()
        for lstart, _, n in got_map:
            got_blocks.update(range(lstart, lstart + n))
        c.eq(sorted(got_blocks), sorted(want), f"ext4 {e['path']} mapped blocks")
    # inline data: files of at most 60 bytes must be inline
    for e in entries:
        if e["type"] == "file" and 0 < e["size"] <= 60 and "hardlink_of" not in e and e["path"].startswith("tiny/"):
            out = outs.get(f"stat {_dq(e['path'])}", "")
            c.ok("Size of inline data" in out, f"ext4 {e['path']} is inline")
    # content
    big = [e for e in entries if e["type"] == "file" and e["size"] > 256 * MIB]
    for e in big:
        c.eq(_ext4_sha256_by_extents(img, e, ex.get(f"ex {_dq(e['path'])}")), e["sha256"], f"ext4 {e['path']} sha256")
    if not full:
        return
    with tempfile.TemporaryDirectory(prefix="ext4-rdump-") as tmp:
        dump_cmds, names = [], {}
        for i, e in enumerate(entries):
            if e["type"] == "file" and e not in big and "hardlink_of" not in e:
                names[e["path"]] = f"{tmp}/{i}"
                dump_cmds.append(f"dump {_dq(e['path'])} {tmp}/{i}")
            elif e["type"] == "symlink" and "Fast link dest" not in outs.get(f"stat {_dq(e['path'])}", ""):
                # slow symlink: the target is the content of its block
                names[e["path"]] = f"{tmp}/{i}"
                dump_cmds.append(f"dump {_dq(e['path'])} {tmp}/{i}")
        _debugfs(img, dump_cmds)
        for e in entries:
            if e["path"] not in names:
                continue
            data = Path(names[e["path"]]).read_bytes()[: e["size"]]  # debugfs dump pads inline files to 60
            if e["type"] == "file":
                c.eq(hashlib.sha256(data).hexdigest(), e["sha256"], f"ext4 {e['path']} sha256")
            else:
                c.eq(data.decode("utf-8", "replace"), e["target"], f"ext4 {e['path']} target")


def _ext4_stat(out: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    m = re.search(r"Mode:\s+(\d+)", out)
    got["mode"] = int(m.group(1), 8) if m else None
    m = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", out)
    got["uid"], got["gid"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    m = re.search(r"Size: (\d+)", out)
    got["size"] = int(m.group(1)) if m else None
    m = re.search(r"\bmtime: 0x([0-9a-f]+)(?::([0-9a-f]+))?", out)
    if m:
        lo = int(m.group(1), 16)
        lo = lo - (1 << 32) if lo & 0x80000000 else lo
        extra = int(m.group(2), 16) if m.group(2) else 0
        got["mtime"] = lo + ((extra & 3) << 32)
    else:
        got["mtime"] = None
    m = re.search(r'Fast link dest: "(.*)"', out)
    got["target"] = m.group(1) if m else None
    return got


def _ext4_extents(out: str) -> list[tuple[int, int, int]]:
    """(logical start, physical start, length) of the leaf extents in debugfs `ex` output."""
    res = []
    for m in re.finditer(r"^\s*(\d+)/\s*(\d+)\s+\d+/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)", out, re.M):
        level, maxlevel = int(m.group(1)), int(m.group(2))
        if level != maxlevel:
            continue
        res.append((int(m.group(3)), int(m.group(5)), int(m.group(7))))
    return res


def _ext4_sha256_by_extents(img: Path, e: dict[str, Any], ex_out: str | None) -> str:
    """Hash a file by reading its extents straight from the image (no dump of GiBs of zeros)."""
    h = hashlib.sha256()
    pos = 0
    with open(img, "rb") as f:
        for lstart, pstart, n in sorted(_ext4_extents(ex_out or "")):
            off = lstart * BLOCK
            _hash_zeros(h, off - pos)
            length = min(n * BLOCK, e["size"] - off)
            f.seek(pstart * BLOCK)
            h.update(f.read(length))
            pos = off + length
    _hash_zeros(h, e["size"] - pos)
    return h.hexdigest()


def check_xfs(img: Path, manifest: dict[str, Any], c: Checker, omitted: list[str] | None = None) -> None:
    """xfs_repair -n; xfs_db path/print/bmap for every entry; content read from the image by bmap."""
    run(["xfs_repair", "-n", "-f", str(img)])
    c.passed += 1
    entries, exp = _present(manifest, "xfs")
    if omitted is not None:
        c.eq(sorted(omitted), sorted(exp["absent"]), "xfs omitted = expect.absent")
    geo = _xfs_geometry(img)
    bsize, agblocks = geo["blocksize"], geo["agblocks"]
    cmds = []
    for i, e in enumerate(entries + [{"path": "", "type": "dir"}]):
        cmds += [f"echo @@{i}", f"path /{e['path']}", "print core.mode core.uid core.gid core.size core.mtime.sec "
                 "core.nlinkv2 core.format"]
        if e["type"] == "symlink":
            cmds.append("print u3")
        if e["type"] in ("file", "symlink"):
            cmds.append("bmap")
    chunks = _xfs_chunks(_xfs_db_script(img, cmds))
    with open(img, "rb") as imgf:
        for i, e in enumerate(entries + [{"path": "", "type": "dir"}]):
            out = chunks.get(i, "")
            got = _xfs_fields(out)
            what = f"xfs /{e['path']}"
            if got.get("mode") is None:
                c.ok(False, f"{what}: not found")
                continue
            want_type = {"dir": 0o040000, "file": 0o100000, "symlink": 0o120000}[e["type"]]
            c.eq(got["mode"] & 0o170000, want_type, f"{what} type")
            if e["path"] == "":
                got["mode"] &= 0o7777
                for f in exp["root"]:
                    c.eq(got[f], manifest["root"][f], f"xfs / {f}")
                continue
            got["mode"] &= 0o7777
            for f in ("mode", "uid", "gid", "mtime"):
                if f in _fields(exp, e):
                    c.eq(got[f], _want(e, exp, f), f"{what} {f}")
            if e["type"] == "dir":
                continue
            c.eq(got["size"], e["size"], f"{what} size")
            extents = [tuple(map(int, m.groups())) for m in re.finditer(
                r"data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d+)", out)]
            if e["type"] == "file":
                h = hashlib.sha256()
                pos = 0
                for loff, agno, agbno, count, flag in sorted(extents):
                    off = loff * bsize
                    _hash_zeros(h, off - pos)
                    n = min(count * bsize, e["size"] - off)
                    if flag:
                        _hash_zeros(h, n)
                    else:
                        imgf.seek((agno * agblocks + agbno) * bsize)
                        h.update(imgf.read(n))
                    pos = off + n
                _hash_zeros(h, e["size"] - pos)
                c.eq(h.hexdigest(), e["sha256"], f"{what} sha256")
                if "hardlink_of" in e:
                    c.eq(got["nlink"], 1, f"{what} nlink (hard links are separate files)")
            else:
                if got["format"] == 1:
                    m = re.search(r'u3.symlink = "(.*)"', out)  # xfs_db escapes bytes >= 0x80 as \ooo
                    target = m.group(1).encode("latin-1").decode("unicode_escape").encode("latin-1").decode(
                        "utf-8", "replace") if m else None
                else:
                    data = b""
                    for loff, agno, agbno, count, _ in sorted(extents):
                        imgf.seek((agno * agblocks + agbno) * bsize)
                        blk = imgf.read(count * bsize)
                        n = struct.unpack(">I", blk[8:12])[0]  # xfs_dsymlink_hdr: magic, offset, bytes
                        data += blk[56:56 + n]
                    target = data.decode("utf-8", "replace")
                c.eq(target, e["target"], f"{what} target")


def _xfs_fields(out: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for key, name in (("mode", "core.mode"), ("uid", "core.uid"), ("gid", "core.gid"), ("size", "core.size"),
                      ("nlink", "core.nlinkv2")):
        m = re.search(rf"^{re.escape(name)} = (\S+)", out, re.M)
        got[key] = (int(m.group(1), 8) if key == "mode" else int(m.group(1))) if m else None
    m = re.search(r"^core.format = (\d+)", out, re.M)
    got["format"] = int(m.group(1)) if m else None
    m = re.search(r"^core.mtime.sec = (.+)$", out, re.M)
    got["mtime"] = calendar.timegm(time.strptime(m.group(1).strip(), "%a %b %d %H:%M:%S %Y")) if m else None
    return got


def check_ntfs(img: Path, manifest: dict[str, Any], c: Checker) -> None:
    """ntfsfix -n; ntfs-3g read-only mount compared with the manifest; ntfscat/ntfsinfo independently."""
    run(["ntfsfix", "-n", str(img)])
    c.passed += 1
    entries, exp = _present(manifest, "ntfs")
    inos: dict[str, int] = {}
    with ntfs_mount(img, readonly=True) as mnt:
        for e in entries:
            p = mnt / e["path"]
            what = f"ntfs {e['path']}"
            try:
                st = os.lstat(p)
            except OSError as err:
                c.ok(False, f"{what}: {err}")
                continue
            inos[e["path"]] = st.st_ino
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            c.eq(kind, e["type"], f"{what} type")
            c.eq(st.st_mtime_ns // 1_000_000_000, _want(e, exp, "mtime"), f"{what} mtime")
            if e["type"] == "file":
                c.eq(st.st_size, e["size"], f"{what} size")
                c.eq(sha256_file(p), e["sha256"], f"{what} sha256")
            elif e["type"] == "symlink":
                c.eq(os.readlink(p), e["target"], f"{what} target")
        c.eq(os.stat(mnt).st_mtime_ns // 1_000_000_000, manifest["root"]["mtime"], "ntfs / mtime")
        listing = {n for n in os.listdir(mnt)}
        want_top = {e["path"] for e in entries if "/" not in e["path"]}
        c.eq(sorted(listing - want_top), [], "ntfs no extra names at the root")
        c.eq(len(os.listdir(mnt / "many")), 10_000, "ntfs many/ has 10,000 entries")
    for e in entries:
        if "hardlink_of" in e:
            c.eq(inos.get(e["path"]), inos.get(e["hardlink_of"]), f"ntfs {e['path']} hard link")
    # independently of FUSE: ntfscat, ntfsinfo, ntfsls
    sample = [e for e in entries if e["type"] == "file" and e["size"] <= 64 * MIB
              and (not e["path"].startswith("many/") or e["path"].endswith("7"))][:60]
    for e in sample:
        data = run(["ntfscat", "-f", str(img), "/" + e["path"]]).stdout
        c.eq(hashlib.sha256(data).hexdigest(), e["sha256"], f"ntfscat {e['path']} sha256")
    for e in entries:
        if "data_extents" in e:
            info = run(["ntfsinfo", "-f", "-F", "/" + e["path"], str(img)]).stdout.decode(errors="replace")
            c.ok("SPARSE_FILE" in info, f"ntfsinfo {e['path']}: SPARSE_FILE attribute")
    c.eq(len(_ntfsls(img, "/many")), 10_000, "ntfsls /many count")
    top = {e["path"] for e in entries if "/" not in e["path"]}
    c.eq(sorted(_ntfsls(img, "/")), sorted(top), "ntfsls / names")


def _ntfsls(img: Path, path: str) -> list[str]:
    """Names in an NTFS directory, read by ntfsls (libntfs-3g, no FUSE)."""
    out = run(["ntfsls", "-f", "-p", path, str(img)]).stdout.decode("utf-8", "replace").splitlines()
    return [n for n in out if n not in (".", "..", "")]


def check_signature(img: Path, kind: str, offset: int, c: Checker) -> None:
    """blkid -p (libblkid's own probes) must name the signature."""
    want = {"luks": "crypto_LUKS", "lvm": "LVM2_member", "btrfs": "btrfs", "zfs": "zfs_member", "swap": "swap"}
    proc = run(["blkid", "-p", "-o", "export", "-O", str(offset), str(img)], check=False)
    out = proc.stdout.decode(errors="replace")
    m = re.search(r"^TYPE=(\S+)", out, re.M)
    got = m.group(1) if m else None
    c.eq(got, want.get(kind), f"blkid {kind} @ {offset}")


def check_layout(info: dict[str, Any], c: Checker) -> None:
    """sfdisk --json must show partition 2 where the image says the filesystem is."""
    out = json.loads(run(["sfdisk", "--json", info["path"]]).stdout)["partitiontable"]
    c.eq(out["label"], "gpt" if info["layout"] == "gpt" else "dos", f"{info['path']} label")
    parts = out["partitions"]
    c.eq(len(parts), 2, f"{info['path']} partitions")
    if info["layout"] == "gpt":  # gdisk's own verification: CRCs, backup header, overlaps
        v = run(["sgdisk", "-v", info["path"]], check=False).stdout.decode(errors="replace")
        c.ok("No problems found" in v, f"sgdisk -v {info['path']}: {v.strip()[-300:]}")
    if len(parts) == 2:
        c.eq(parts[1]["start"] * 512, info["offset"], f"{info['path']} partition 2 offset")
        c.eq(parts[1]["size"] * 512, info["fs_size"], f"{info['path']} partition 2 size")


def selfcheck(work: Path | None = None, big: bool = False, keep: bool = False) -> dict[str, Any]:
    """Build every kind of image from the standard tree and verify each; return timings and sizes."""
    temporary = work is None
    base = Path(tempfile.mkdtemp(prefix="fsimages-selfcheck-")) if work is None else Path(work)
    base.mkdir(parents=True, exist_ok=True)
    c = Checker()
    report: dict[str, Any] = {"work": str(base), "steps": []}

    def step(name: str, fn: Any) -> Any:
        t0 = time.monotonic()
        res = fn()
        dt = round(time.monotonic() - t0, 2)
        row = {"step": name, "seconds": dt}
        if isinstance(res, dict) and "disk_usage" in res:
            row.update(size=res["size"], disk_usage=res["disk_usage"])
        report["steps"].append(row)
        _log(f"{name}: {dt} s" + (f", {res['size'] // MIB} MiB, du {res['disk_usage'] // 1024} KiB"
                                    if isinstance(res, dict) and "disk_usage" in res else ""))
        return res

    try:
        tree = base / "tree"
        manifest = step("tree", lambda: write_tree(tree, force=True))
        (base / "tree.manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        c.ok(any(e["path"].count("/") >= 20 for e in manifest["entries"]), "depth >= 20")
        imgs: dict[str, dict[str, Any]] = {}
        for fs in TREE_FILESYSTEMS:
            imgs[fs] = step(f"image {fs} bare", lambda fs=fs: build_image(fs, base / f"{fs}.img", tree))
        step("check ext4", lambda: check_ext4(base / "ext4.img", manifest, c))
        step("check xfs", lambda: check_xfs(base / "xfs.img", manifest, c, imgs["xfs"]["omitted"]))
        step("check ntfs", lambda: check_ntfs(base / "ntfs.img", manifest, c))
        for fs, layout in (("ext4", "gpt"), ("xfs", "mbr"), ("ntfs", "gpt")):
            info = step(f"image {fs} {layout}", lambda fs=fs, layout=layout: build_image(
                fs, base / f"{fs}-{layout}.img", tree, layout=layout))
            check_layout(info, c)
            part = base / f"{fs}-{layout}.part"
            _extract_partition(Path(info["path"]), info["offset"], info["fs_size"], part)
            if fs == "ext4":
                step(f"check {fs} {layout}", lambda: check_ext4(part, manifest, c, full=False))
            elif fs == "xfs":
                step(f"check {fs} {layout}", lambda: check_xfs(part, manifest, c))
            else:
                run(["ntfsfix", "-n", str(part)])
                c.eq(len(_ntfsls(part, "/many")), 10_000, f"ntfs {layout}: ntfsls /many")
                data = run(["ntfscat", "-f", str(part), "/sizes/1MiB"]).stdout
                want = next(e["sha256"] for e in manifest["entries"] if e["path"] == "sizes/1MiB")
                c.eq(hashlib.sha256(data).hexdigest(), want, f"ntfs {layout}: ntfscat sizes/1MiB")
            part.unlink()
        for kind in SIGNATURE_KINDS:
            info = step(f"image {kind}", lambda kind=kind: build_image(kind, base / f"{kind}.img"))
            if kind == "unformatted":
                c.eq(info["disk_usage"], 0, "unformatted image takes no space")
                proc = run(["blkid", "-p", "-o", "export", info["path"]], check=False)
                c.ok(b"TYPE=" not in proc.stdout, "blkid finds nothing on the unformatted image")
            else:
                check_signature(Path(info["path"]), kind, 0, c)
        for kind, layout in (("luks", "gpt"), ("lvm", "mbr")):
            info = step(f"image {kind} {layout}", lambda kind=kind, layout=layout: build_image(
                kind, base / f"{kind}-{layout}.img", layout=layout))
            check_layout(info, c)
            check_signature(Path(info["path"]), kind, info["offset"], c)
        if big:
            btree = base / "tree-big"
            bman = step("tree --big", lambda: write_tree(btree, big=True, force=True))
            bimgs = {}
            for fs in TREE_FILESYSTEMS:
                bimgs[fs] = step(f"image {fs} --big", lambda fs=fs: build_image(fs, base / f"{fs}-big.img", btree))
            step("check ext4 --big", lambda: check_ext4(base / "ext4-big.img", bman, c))
            step("check xfs --big", lambda: check_xfs(base / "xfs-big.img", bman, c, bimgs["xfs"]["omitted"]))
            step("check ntfs --big", lambda: check_ntfs(base / "ntfs-big.img", bman, c))
            c.ok("big/over-4GiB" in bman["expect"]["xfs"]["absent"], "xfs leaves out the >2 GiB file")
        report["disk_usage_total"] = sum(disk_usage(p) for p in base.rglob("*") if p.is_file())
    finally:
        if temporary and not keep:
            shutil.rmtree(base, ignore_errors=True)
    report["passed"] = c.passed
    report["failed"] = len(c.failures)
    report["failures"] = c.failures[:50]
    return report


# --------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tree", help="write the standard tree and print its manifest (JSON)")
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write (absent or empty)")
    t.add_argument("--big", action="store_true", help="add big/over-4GiB (sparse, 4 GiB + 1 MiB)")
    t.add_argument("--size64", action="store_true", help="add sizes/64MiB")
    t.add_argument("--manifest", type=Path, metavar="FILE",
                   help="where to write the manifest (default DIR/../<name>.manifest.json)")
    t.add_argument("--force", action="store_true", help="replace a non-empty DIR")
    i = sub.add_parser("image", help="build one raw image; print one JSON line")
    i.add_argument("--fs", required=True, choices=TREE_FILESYSTEMS + SIGNATURE_KINDS)
    i.add_argument("--tree", type=Path, metavar="DIR", help="the tree (ext4, xfs, ntfs)")
    i.add_argument("--out", required=True, type=Path, metavar="FILE", help="image file to write (replaced)")
    i.add_argument("--layout", default="bare", choices=LAYOUTS,
                   help="bare: filesystem at 0; gpt/mbr: in partition 2 at 2 MiB")
    i.add_argument("--size", type=int, metavar="MIB", help="filesystem (partition) size in MiB")
    s = sub.add_parser("selfcheck", help="build every image, read each back with the fs tools")
    s.add_argument("--work", type=Path, metavar="DIR", help="work directory, kept (default: a temporary one)")
    s.add_argument("--big", action="store_true", help="also the tree with the >4 GiB file, in all three filesystems")
    s.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "tree":
            manifest = write_tree(args.out, big=args.big, size64=args.size64, force=args.force)
            target = args.manifest or args.out.resolve().parent / f"{args.out.resolve().name}.manifest.json"
            text = json.dumps(manifest, ensure_ascii=False, indent=1)
            Path(target).write_text(text + "\n", encoding="utf-8")
            sys.stdout.write(text + "\n")
        elif args.cmd == "image":
            info = build_image(args.fs, args.out, args.tree, args.layout, args.size)
            print(json.dumps(info, ensure_ascii=False))
        else:
            report = selfcheck(args.work, big=args.big, keep=args.keep)
            print(json.dumps(report, indent=1))
            print(f"selfcheck: {report['passed']} passed, {report['failed']} failed")
            return 1 if report["failed"] else 0
    except BuildError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
