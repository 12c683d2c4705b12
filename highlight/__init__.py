"""Highlights: per-second signals of a broadcast, their fusion, and clips.

librosa compiles some of its functions with numba the first time they run and
caches the result on disk, by default beside librosa itself: in an image where
the package folder is read-only, that cache is never written and every process
pays the compile again. It goes to the user's cache folder instead (unless
NUMBA_CACHE_DIR says otherwise), set before numba is first imported.
"""

import os
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                            / "liveroom" / "numba"))
