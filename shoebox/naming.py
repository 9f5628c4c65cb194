"""Archive names and the ".open, then rename" contract.

Only a writer creates ``NAME.open`` files; only :func:`finalize` (a rename
that never replaces anything) makes an archive visible under its final
name, and nothing writes into a final-named archive after that. Readers,
recovery and the sidecar skip names for which :func:`is_open` holds.
"""

from __future__ import annotations

import datetime
import glob
import itertools
import os
import re
import socket
from collections.abc import Iterator

from ._files import fsync_directory, rename_no_replace

#: The characters that make a path a glob.
GLOB_CHARS = re.compile(r"[*?[]")

#: Suffix of an archive that is still being written.
OPEN_SUFFIX = ".open"
#: Added to an archive's name when :func:`shoebox.repair` keeps the damaged original.
DAMAGED_SUFFIX = ".damaged"
#: The directory the sidecar moves damaged archives into, by default
#: (``WATCH_DIR/quarantine``).
QUARANTINE_DIR = "quarantine"


def is_open(name: str) -> bool:
    """Whether ``name`` is an archive still being written (``….open``)."""
    return name.endswith(OPEN_SUFFIX)


def is_leftover(path: str, named: str) -> bool:
    """Whether a file found by reading a directory, a glob or an S3 prefix
    is not an archive but something left beside the archives, which
    readers leave out unless told to read every file (issue 18: after
    ``shoebox repair``, reading the directory read the damaged original
    too, and duplicated every record it kept):

    - a ``.damaged`` original that :func:`shoebox.repair` kept (or a
      variant of that name, ``a_1.damaged``);
    - anything inside a ``quarantine`` directory (where the sidecar's
      ``--verify`` moves damaged archives by default);
    - a hidden file, or anything in a hidden directory: the temporaries of
      repair (``.NAME.*.repair``), shipping and export (``.shoebox-*``).

    ``path`` is the file found (a path or URL) and ``named`` what was named
    to find it: the directory, S3 prefix or glob, which ``path`` starts
    with; only the part of ``path`` below it counts. A glob that itself
    names such files (``d/*.damaged``, ``d/quarantine/*``, ``d/.*``) asks
    for them: its matches are not left out. ``.open`` archives are another
    matter (:func:`is_open`).
    """
    root = named
    magic = GLOB_CHARS.search(named)
    if magic:
        # Relative to the glob's fixed folder: d/a* matches are below d/.
        root = named[:named.rfind("/", 0, magic.start()) + 1]
        if _names_leftovers(named[len(root):]):
            return False
    return _names_leftovers(path[len(root):])


def _names_leftovers(relative: str) -> bool:
    parts = [part for part in relative.replace(os.sep, "/").split("/")
             if part not in ("", ".", "..")]
    if not parts:
        return False
    return (any(part.startswith(".") for part in parts) or QUARANTINE_DIR in parts[:-1]
            or parts[-1].endswith(DAMAGED_SUFFIX))


def _safe(text: str) -> str:
    """Make text usable inside one file name, as the original did for strftime
    output: spaces, slashes and colons become underscores."""
    return text.replace(" ", "_").replace("/", "_").replace(":", "_")


def render_filename(template: str, now: datetime.datetime | None = None) -> str:
    """Build a file name from ``template``: strftime codes (UTC, ``%f`` allowed),
    then ``{host}`` and ``{pid}``; spaces, ``/`` and ``:`` become ``_``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = _safe(now.strftime(template))
    return name.replace("{host}", _safe(socket.gethostname())).replace("{pid}", str(os.getpid()))


def name_pattern(template: str) -> str:
    """A wildcard matching every name :func:`render_filename` can give for
    ``template`` and every variant :func:`candidates` makes of those (so
    the names of archives other processes write with the same template,
    whatever their host and pid): strftime codes, ``{host}`` and ``{pid}``
    match anything, and so does the place where a variant puts ``_N``."""
    parts = re.split(r"(%.|\{host\}|\{pid\})", template)
    pattern = "".join("%" if part == "%%" else "*" if index % 2 else glob.escape(_safe(part))
                      for index, part in enumerate(parts))
    stem, ext = os.path.splitext(pattern)
    return re.sub(r"\*+", "*", f"{stem}*{ext}")


def candidates(name: str) -> Iterator[str]:
    """``name``, then its unique variants ``a_1.events``, ``a_2.events``…, which
    sort after the name they vary (``.`` sorts before ``_``): whoever finds a
    name taken moves on to the next, so nothing is ever replaced."""
    yield name
    stem, ext = os.path.splitext(name)
    for number in itertools.count(1):
        yield f"{stem}_{number}{ext}"


def rename_unique(source: str, target: str) -> str:
    """Rename ``source`` to ``target``, or to the first free variant of it
    (see :func:`candidates`): nothing is ever replaced. Returns the new path;
    the caller syncs the directory."""
    for name in candidates(target):
        try:
            rename_no_replace(source, name)
            return name
        except FileExistsError:
            if _same_entry(source, name):
                # A rename that linked but did not unlink (a crash between).
                os.unlink(source)
                return name
    raise AssertionError("candidates() never ends")  # pragma: no cover


def _same_entry(first: str, second: str) -> bool:
    """Whether two names are one file, comparing the entries themselves
    (a symbolic link is never followed)."""
    try:
        return os.path.samestat(os.stat(first, follow_symlinks=False),
                                os.stat(second, follow_symlinks=False))
    except FileNotFoundError:
        return False


def finalize(open_path: str) -> str:
    """Rename a finished ``X.open`` archive to ``X`` (or the first free variant
    of ``X``: nothing is ever replaced), fsync the directory, and return the
    final path."""
    if not is_open(open_path):
        raise ValueError(f"{open_path} is not an archive being written (no {OPEN_SUFFIX})")
    target = rename_unique(open_path, open_path[:-len(OPEN_SUFFIX)])
    fsync_directory(os.path.dirname(target))
    return target


__all__ = [
    "DAMAGED_SUFFIX",
    "GLOB_CHARS",
    "OPEN_SUFFIX",
    "QUARANTINE_DIR",
    "candidates",
    "finalize",
    "is_leftover",
    "is_open",
    "name_pattern",
    "rename_unique",
    "render_filename",
]
