"""Recorded sessions: a folder with ``session.json``, the events and optional media.

Reading is streaming (constant memory whatever the size of ``events.jsonl`` or
``events.jsonl.gz``), and a damaged file is read as far as it goes: the reader
stops at a corrupt or truncated gzip stream and reports it in ``error`` so the
runtime can dead-letter it instead of crashing.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgspec

from .models import Campaign

SESSION_FILE = "session.json"
_CHUNK = 1 << 20


class SessionError(Exception):
    """A session folder that cannot be used; the message says what to fix."""


class SessionFiles(msgspec.Struct, kw_only=True, frozen=True):
    events: str = "events.jsonl"
    video: str | None = None
    labels: str | None = None


class SessionInfo(msgspec.Struct, kw_only=True, frozen=True):
    """Contents of ``session.json``."""

    room_id: str
    start: float
    end: float
    files: SessionFiles = msgspec.field(default_factory=SessionFiles)
    title: str = ""
    campaign: Campaign | None = None
    format: int = 1


@dataclass(frozen=True)
class Session:
    folder: Path
    info: SessionInfo
    events_path: Path
    video_path: Path | None
    labels_path: Path | None

    @property
    def name(self) -> str:
        return self.folder.name

    def campaign(self) -> Campaign:
        return self.info.campaign or Campaign(room_id=self.info.room_id)


def _inside(folder: Path, name: str, what: str) -> Path:
    """Resolve a file named in session.json, refusing anything outside the folder."""
    if not name or Path(name).is_absolute():
        raise SessionError(f"{what} file {name!r} in {SESSION_FILE} must be a relative path inside the session folder")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise SessionError(f"{what} file {name!r} in {SESSION_FILE} points outside the session folder {folder}")
    return path


def open_session(folder: str | Path) -> Session:
    """Validate a session folder; raises :class:`SessionError` with one clear message."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(f"session folder {folder} does not exist or is not a folder")
    folder = folder.resolve()
    meta = folder / SESSION_FILE
    if not meta.is_file():
        raise SessionError(f"{folder} has no {SESSION_FILE}; is it a recorded session folder?")
    try:
        info = msgspec.json.decode(meta.read_bytes(), type=SessionInfo)
    except msgspec.ValidationError as exc:
        raise SessionError(f"{meta}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SessionError(f"{meta} is not valid JSON: {exc}") from None
    if info.end < info.start:
        raise SessionError(f"{meta}: end ({info.end}) is before start ({info.start})")
    events = _inside(folder, info.files.events, "events")
    if not events.is_file():
        raise SessionError(f"events file {events.name} named in {SESSION_FILE} is missing from {folder}")
    video = _inside(folder, info.files.video, "video") if info.files.video else None
    if video is not None and not video.is_file():
        raise SessionError(f"video file {video.name} named in {SESSION_FILE} is missing from {folder}")
    labels = _inside(folder, info.files.labels, "labels") if info.files.labels else None
    return Session(folder=folder, info=info, events_path=events, video_path=video, labels_path=labels)


class LineReader:
    """Iterates the raw lines (without newline) of a ``.jsonl`` or ``.jsonl.gz`` file.

    ``position`` is the byte offset reached in the file on disk (for progress),
    ``size`` its size. If the compressed stream is corrupt or cut short, the
    lines read so far are yielded, then iteration ends and ``error`` holds
    ``(reason, detail)``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.position = 0
        self.error: tuple[str, str] | None = None

    def __iter__(self) -> Iterator[bytes]:
        for lines in self.chunks():
            yield from lines

    def chunks(self) -> Iterator[list[bytes]]:
        """The same lines, a list per chunk read (cheaper per line than ``__iter__``)."""
        with open(self.path, "rb") as disk:
            compressed = disk.read(2) == b"\x1f\x8b"
            disk.seek(0)
            read = gzip.GzipFile(fileobj=disk).read1 if compressed else disk.read
            tail = b""
            while True:
                try:
                    chunk = read(_CHUNK)
                except (EOFError, OSError, zlib.error) as exc:
                    self.error = ("truncated_input", f"{self.path.name} is damaged after byte {disk.tell()}: {exc}")
                    break
                if not chunk:
                    break
                self.position = disk.tell()
                lines = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
                tail = lines.pop()
                yield lines
            if tail:
                yield [tail]
