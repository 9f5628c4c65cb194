"""Following archives while they are written (``shoebox cat --follow``):
the records of ``.open`` archives as they reach the file, across rolls.

:class:`Follower` polls: each :meth:`Follower.poll` lists the paths again
and reads what the files gained since the last one. Polling needs nothing
beyond the standard library, works on every file system (NFS, bind mounts,
where inotify does not tell about other machines' writes), and costs a
listing plus one ``fstat`` per live archive each time: at a few polls a
second, nothing next to the writers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator, Iterable, Iterator

from ._files import file_kind, open_regular
from .archive import ArchiveReader, DamagedRange, _Allowance
from .codec import (
    DEFAULT_MAX_RECORD_SIZE,
    MARKER_BYTES,
    Incomplete,
    Record,
    decode_record,
)
from .errors import CorruptRecord, NotRegularFile, TruncatedRecord
from .naming import OPEN_SUFFIX, is_open
from .sources import expand

_CHUNK = 1 << 20
# (st_dev, st_ino): a live archive keeps its inode when its writer renames
# it to its final name, and keeps it while this reader holds it open.
_Key = tuple[int, int]
# What a finished archive looked like when it was last considered.
_Signature = tuple[int, int, int, int]


def _order(item: _Tail | str) -> tuple[str, bool]:
    """Archives in the order of their final names (a live one's is its name
    without ``.open``), a live one before a finished one new since the last
    poll that sorts with it: that may be a copy of it (``NAME.gz``, made by
    a callback), recognised only once the live one's first record is read."""
    if isinstance(item, str):
        return item, True
    return item.name[:-len(OPEN_SUFFIX)] if is_open(item.name) else item.name, False


def _digest(record: bytes) -> bytes:
    return hashlib.blake2b(record, digest_size=16).digest()


class Follower:
    """The records of the local archives ``paths`` name (directories, files,
    globs, as :func:`~shoebox.sources.expand` reads them), as they are
    written, each once.

    The first :meth:`poll` yields every record already there, in name
    order; each later one yields what was written since: the records new
    ``.open`` archives hold and the ones live archives gained, until their
    writer renames them to their final name (a roll) and they are read to
    their end. Only whole records are yielded: a record the writer has not
    finished is read at a later poll, once it is whole. An archive that
    appears later under a final name is read too (a writer may open, fill
    and finish one between two polls), unless its first record is one
    already yielded: a copy of an archive read before (compressed or moved
    by a callback) is skipped.

    Only regular files are read, each opened without following a symbolic
    link and judged on the descriptor (see
    :func:`shoebox._files.open_regular`), named paths included: a link, a
    FIFO (which would block a plain open) or a socket is left alone and
    listed in :attr:`skipped`, once per path.

    ``recover`` skips damaged bytes and lists them in :attr:`damaged`
    instead of raising :class:`~shoebox.errors.CorruptRecord`. Close the
    follower (or leave its ``with`` block) to release the files it holds.
    Raises ``FileNotFoundError`` at the first poll for a path that names
    nothing; later, paths may come and go.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]], *, recover: bool = False,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        self.paths = [os.fspath(path) for path in paths]
        self.recover = recover
        self.max_record_size = max_record_size
        #: Ranges skipped (``recover=True``), in the order met; clear it at will.
        self.damaged: list[DamagedRange] = []
        #: Paths left alone, not being regular files, each once, in the
        #: order met; clear it at will.
        self.skipped: list[NotRegularFile] = []
        self._skipped_paths: dict[str, str] = {}
        self._tails: dict[_Key, _Tail] = {}
        self._finished: dict[str, _Signature] = {}
        self._firsts: set[bytes] = set()
        self._polled = False

    def poll(self) -> Generator[Record, None, None]:
        """Yield the whole records written since the last poll, archive by
        archive in name order."""
        first, self._polled = not self._polled, True
        finished: list[str] = []
        present: set[_Key] = set()
        names: set[str] = set()
        for name in self._names(strict=first):
            names.add(name)
            try:
                # The entry itself: a link is never followed (issue 17).
                info = os.stat(name, follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed or deleted since the listing
            kind = file_kind(info.st_mode)
            if kind != "regular":
                self._skip(NotRegularFile(kind, filename=name))
                continue
            key = (info.st_dev, info.st_ino)
            tail = self._tails.get(key)
            if tail is not None:
                tail.name = name  # renamed by its writer, perhaps
                present.add(key)
            elif is_open(name):
                tail = _Tail.open(name, key, self)
                if tail is not None:
                    self._tails[key] = tail
                    present.add(key)
                continue
            signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            if self._finished.get(name) != signature:
                self._finished[name] = signature
                if tail is None:
                    finished.append(name)
        self._finished = {name: sign for name, sign in self._finished.items() if name in names}
        self._skipped_paths = {name: kind for name, kind in self._skipped_paths.items()
                               if name in names}
        items: list[_Tail | str] = [*finished, *self._tails.values()]
        for item in sorted(items, key=_order):
            if isinstance(item, str):
                yield from self._read_finished(item)
                continue
            yield from item.read()
            if item.key not in present or not is_open(item.name):
                # Renamed to its final name (complete) or gone: what it holds
                # is all there will be.
                del self._tails[item.key]
                item.finish()

    def close(self) -> None:
        """Release every file held. Closing twice is harmless."""
        tails, self._tails = self._tails, {}
        for tail in tails.values():
            tail.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _names(self, *, strict: bool) -> list[str]:
        if strict:
            return [source.name for source in expand(self.paths, include_open=True).sources]
        names = []
        for path in self.paths:
            try:
                names += [source.name for source in expand([path], include_open=True).sources]
            except FileNotFoundError:
                continue  # a glob matching nothing now, a directory removed
        return names

    def _skip(self, error: NotRegularFile) -> None:
        """Note a path left alone, once (again if it turns into another kind)."""
        assert error.filename is not None
        if self._skipped_paths.get(error.filename) != error.kind:
            self._skipped_paths[error.filename] = error.kind
            self.skipped.append(error)

    def _read_finished(self, name: str) -> Iterator[Record]:
        try:
            source = os.fdopen(open_regular(name), "rb")
        except FileNotFoundError:
            return  # shipped and deleted since the listing
        except NotRegularFile as error:  # swapped since the listing
            self._skip(error)
            return
        reader = ArchiveReader(source, filename=name, recover=self.recover,
                               max_record_size=self.max_record_size)
        with reader:
            for count, record in enumerate(reader):
                if count == 0:
                    first = reader.record_bytes
                    assert first is not None
                    if not self._known_first(first):
                        return  # a copy of an archive read before
                yield record
            self.damaged += reader.damaged

    def _known_first(self, record: bytes) -> bool:
        """Note the first record of an archive; whether it is new."""
        digest = _digest(record)
        if digest in self._firsts:
            return False
        self._firsts.add(digest)
        return True


class _Tail:
    """One live archive, read as it grows: whole records only."""

    def __init__(self, name: str, key: _Key, fd: int, follower: Follower) -> None:
        self.name = name
        self.key = key
        self._fd: int | None = fd
        self._follower = follower
        self._buf = b""
        self._pos = 0
        self._base = 0  # file offset of self._buf[0]
        self._records = 0
        # Where skipped damage started (recover), while no record validates.
        self._damage: tuple[int, str] | None = None
        # What checking damaged records may cost: as ArchiveReader's, so
        # that a crafted live file costs what its size costs (issue 17).
        self._allowance = _Allowance(follower.max_record_size)

    @classmethod
    def open(cls, name: str, key: _Key, follower: Follower) -> _Tail | None:
        """Follow ``name`` if it is still the file ``key`` names."""
        try:
            fd = open_regular(name)
        except FileNotFoundError:
            return None  # finished meanwhile: a later listing has it
        except NotRegularFile as error:  # swapped since the listing
            follower._skip(error)
            return None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != key:
            os.close(fd)
            return None
        return cls(name, key, fd, follower)

    def read(self) -> Iterator[Record]:
        """The whole records the file gained."""
        fd = self._fd
        assert fd is not None
        size = os.fstat(fd).st_size
        if size < self._base + len(self._buf):
            # The writer cut a failed write back to its last whole record
            # (or recover() cut a torn tail): forget the bytes it took back.
            self._buf = self._buf[:max(size - self._base, self._pos)]
        while True:
            yield from self._decode()
            end = self._base + len(self._buf)
            if end >= size:
                return
            chunk = os.pread(fd, min(_CHUNK, size - end), end)
            if not chunk:
                return
            self._buf = self._buf[self._pos:] + chunk
            self._base += self._pos
            self._pos = 0

    def finish(self) -> None:
        """The archive is complete: bytes left over are a torn record or damage."""
        try:
            end = self._base + len(self._buf)
            if self._damage is not None:
                start, reason = self._damage
                self._skipped(start, end - start, reason)
            elif self._pos < len(self._buf):
                torn = TruncatedRecord(f"the archive was finished with its last "
                                       f"{len(self._buf) - self._pos} bytes not a whole record")
                if not self._follower.recover:
                    raise torn.located(self.name, self._base + self._pos)
                self._skipped(self._base + self._pos, len(self._buf) - self._pos, torn.reason)
        finally:
            self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _decode(self) -> Iterator[Record]:
        follower = self._follower
        while True:
            if self._damage is not None and not self._resync():
                return
            try:
                if follower.recover:
                    metadata, payload, end = self._allowance.decode(
                        self._buf, self._pos, self._base + self._pos)
                else:
                    metadata, payload, end = decode_record(self._buf, self._pos,
                                                           follower.max_record_size)
            except Incomplete:
                return  # the writer has not finished it: look again next poll
            except CorruptRecord as error:
                self._skipped_or_raise(error)
                continue
            if self._records == 0:
                follower._known_first(self._buf[self._pos:end])
            self._records += 1
            self._pos = end
            yield metadata, payload

    def _skipped_or_raise(self, error: CorruptRecord) -> None:
        offset = self._base + self._pos
        if not self._follower.recover:
            raise error.located(self.name, offset)
        self._damage = (offset, error.reason)
        self._pos += 1

    def _resync(self) -> bool:
        """After damage, move to the next record that validates; False when
        none does yet (it may still be being written)."""
        while True:
            found = self._buf.find(MARKER_BYTES, self._pos)
            if found < 0:
                self._pos = max(self._pos, len(self._buf) - (len(MARKER_BYTES) - 1))
                return False
            self._pos = found
            try:
                # The header first: it says whether the record may be checked.
                valid = self._allowance.may_check(self._buf, found, self._base + found)
                if valid:
                    self._allowance.decode(self._buf, found, self._base + found)
            except Incomplete:
                return False
            except CorruptRecord:
                valid = False
            if not valid:
                self._pos = found + 1
                continue
            assert self._damage is not None
            start, reason = self._damage
            self._damage = None
            self._skipped(start, self._base + found - start, reason)
            return True

    def _skipped(self, start: int, length: int, reason: str) -> None:
        self._follower.damaged.append(DamagedRange(self.name, start, length, reason))


__all__ = ["Follower"]
