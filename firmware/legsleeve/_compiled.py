"""The compiled build's guard: a copy of this package whose per-tick modules mypyc compiled (`make compiled`, into
.compiled/) must not run once its sources have changed, or a test would pass on code that no longer exists.

`make compiled` copies the package (times kept), compiles it, stamps the copy (`stamp`) and only then moves it into
place: the stamp holds the source directory it came from, a digest of every source file copied, and each one's size
and modification time. Importing `legsleeve` from a stamped copy checks the source directory as it is now - the
sizes and times settle it without reading a file (well under a millisecond); where they differ, the contents decide
(a checkout that only touched the files is no change) - and refuses a copy that is stale, or whose sources are not
there to tell. The source tree itself has no stamp: nothing is checked there. (Standard library only, and nothing
costly to import: it runs before `legsleeve --help`.)
"""

from __future__ import annotations

import os

STAMP = "_compiled.stamp"
_SUFFIXES = (".py", ".html", ".js", ".css")


class StaleBuild(ImportError):
    pass


def _sources(root: str, prefix: str = "") -> list[tuple[str, os.stat_result]]:
    """Every source file under `root` as (name relative to it, its stat), sorted, caches left out."""
    out = []
    with os.scandir(os.path.join(root, prefix) if prefix else root) as entries:
        for entry in entries:
            name = prefix + entry.name
            if entry.is_dir():
                if entry.name != "__pycache__":
                    out += _sources(root, name + "/")
            elif entry.name.endswith(_SUFFIXES):
                out.append((name, entry.stat()))
    return sorted(out)


def _listing(root: str) -> str:
    return "\n".join(f"{name}\t{st.st_size}\t{st.st_mtime_ns}" for name, st in _sources(root))


def digest(root: str) -> str:
    """A digest of every source file under `root` (names and contents, in a fixed order)."""
    import hashlib

    h = hashlib.sha256()
    for name, _ in _sources(root):
        with open(os.path.join(root, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def stamp(source: str, copy: str, final: str | None = None) -> None:
    """Stamp the compiled copy `copy` (a package directory, copied from `source` with its files' times kept; to be
    moved to `final`, if given) as built from `source`: the source's path relative to where the copy will stand (a
    checkout moved whole keeps them together), and the digest and listing of the copy's own sources - what the source
    was when copied, whatever changed there during the build."""
    where = os.path.relpath(os.path.abspath(source), os.path.abspath(final or copy))
    with open(os.path.join(copy, STAMP), "w", encoding="utf-8") as f:
        f.write(f"{where}\n{digest(copy)}\n{_listing(copy)}\n")


def check(package_dir: str) -> None:
    """Raise StaleBuild if `package_dir` is a stamped compiled copy whose source directory has changed since, or
    cannot be found to tell."""
    try:
        with open(os.path.join(package_dir, STAMP), encoding="utf-8") as f:
            where, stamped_digest, stamped_listing = f.read().rstrip("\n").split("\n", 2)
    except FileNotFoundError:
        return  # the source tree, or an ordinary install: nothing compiled here
    source = os.path.normpath(os.path.join(package_dir, where))
    if not os.path.isdir(source):
        raise StaleBuild(
            f"{package_dir} is a compiled copy of {source}, which is not there to check it against: run "
            "`make compiled` in the checkout it belongs to (or leave PYTHONPATH without the compiled copy)"
        )
    if _listing(source) == stamped_listing:
        return
    if digest(source) != stamped_digest:
        raise StaleBuild(
            f"{package_dir} is a compiled copy of {source}, which has changed since it was built: run `make compiled` "
            "(or leave PYTHONPATH without the compiled copy to run the sources)"
        )
