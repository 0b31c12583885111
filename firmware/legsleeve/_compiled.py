"""The compiled build's guard: a copy of this package whose per-tick modules mypyc compiled (`make compiled`, into
.compiled/) must not run once its sources have changed, or a test would pass on code that no longer exists.

`make compiled` copies the package and stamps the copy (`stamp`): the source
directory it came from and a digest of every source file in it. Importing `legsleeve` from a stamped copy checks the
digest against the source directory as it is now (a few milliseconds) and refuses a copy that is stale. The source
tree itself has no stamp: nothing is checked there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

STAMP = "_compiled.json"
_SUFFIXES = (".py", ".html", ".js", ".css")


class StaleBuild(ImportError):
    pass


def digest(root: Path) -> str:
    """A digest of every source file under `root` (names and contents, in a fixed order), caches left out."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def stamp(source: str | Path, copy: str | Path) -> None:
    source, copy = Path(source), Path(copy)
    (copy / STAMP).write_text(json.dumps({"source": str(source.resolve()), "digest": digest(source)}) + "\n")


def check(package_dir: Path) -> None:
    """Raise StaleBuild if `package_dir` is a stamped compiled copy whose source directory has changed since."""
    try:
        stamped = json.loads((package_dir / STAMP).read_text())
    except FileNotFoundError:
        return  # the source tree, or an ordinary install: nothing compiled here
    source = Path(stamped["source"])
    if source.is_dir() and digest(source) != stamped["digest"]:
        raise StaleBuild(
            f"{package_dir} is a compiled copy of {source}, which has changed since it was built: run `make compiled` "
            "(or leave PYTHONPATH without the compiled copy to run the sources)"
        )
