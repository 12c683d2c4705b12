"""Output folders written atomically, and identifiers turned into safe file names.

Why a whole folder at once: a run writes several files that only make sense
together (snapshots, decisions, clips, the summary that says all inputs were
accounted for). Writing them in place, a killed run left the old ``summary.json``
beside a new, partial ``room-metrics.jsonl``, and a re-run left the previous
run's clips behind. So a run writes into a hidden folder beside ``--out`` and
moves it into place when everything is there: a reader sees the old complete
folder or the new complete folder, never a mix.

Why names from identifiers are slugs with a hash: room and clip ids come from
the stream, so they are data an attacker controls (``../../x``, ``/tmp/x``, NUL,
a thousand characters). A name derived from one keeps only ``[A-Za-z0-9._-]``,
at most 48 characters of it, plus 10 hex digits of its sha256, so two ids never
share a folder, and the result is checked to resolve inside its base folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

MARKER = ".liveroom-output"  # present in every folder this module wrote; only such folders are replaced
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutputFolderError(Exception):
    """``--out`` cannot be used; the message says why."""


def safe_name(identifier: str) -> str:
    """A file name for ``identifier``: a readable slug plus a short hash of the whole id."""
    slug = _UNSAFE.sub("-", identifier)[:48].strip(".-") or "id"
    return f"{slug}-{hashlib.sha256(identifier.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def inside(base: Path, name: str) -> Path:
    """``base / name``, refused unless it resolves inside ``base``."""
    base = base.resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise ValueError(f"{name!r:.80} does not stay inside {base}")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(parent: Path, name: str) -> None:
    """Temporary folders of runs that were killed (their process is gone)."""
    for p in parent.glob(f".{name}.partial-*"):
        try:
            pid = int(p.name.rsplit("partial-", 1)[1].split("-", 1)[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def check_out(out: Path, *, protect: Iterable[Path] = ()) -> Path:
    """Refuse an ``--out`` that is a file, that is or holds any of ``protect``
    (the run's own inputs), or a non-empty folder this module did not write."""
    out = Path(out)
    try:
        resolved = out.resolve()
        if out.exists() and not out.is_dir():
            raise OutputFolderError(f"--out {out} exists and is not a folder")
        for p in protect:
            p = Path(p).resolve()
            if p == resolved or p.is_relative_to(resolved):
                raise OutputFolderError(f"--out {out} holds this run's input {p}; choose another folder")
        if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()):
            raise OutputFolderError(f"--out {out} is a folder with other files in it; liveroom replaces only "
                                    f"empty folders or its own output folders (with {MARKER})")
    except OSError as exc:
        raise OutputFolderError(f"--out {out}: {exc}") from None
    return resolved


@contextmanager
def atomic_folder(out: Path, *, protect: Iterable[Path] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; when the block ends without
    an error, it replaces ``out`` whole. On an error it is removed, ``out`` untouched."""
    out = check_out(out, protect=protect)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(parent, out.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=parent))
        os.chmod(tmp, 0o755)
    except OSError as exc:
        raise OutputFolderError(f"cannot write beside --out {out}: {exc}") from None
    try:
        yield tmp
        (tmp / MARKER).write_text("written by liveroom; the whole folder is replaced on a re-run\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.rename(out, old / "previous")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
