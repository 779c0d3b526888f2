"""Objects handed in order from a process to the child it forked, while both work: the parent
sends each as it is made and never waits for the child; the child takes each when it needs it.

    >>> spool = Spool()                                          # doctest: +SKIP
    >>> # then fork; the parent:  spool.writing(); spool.send(value); spool.close()
    >>> #            the child:   spool.reading(); value = spool.receive()

Each object is pickled into an unlinked temporary file, and sixteen bytes on a pipe say where:
a pipe alone holds 64 KiB, so a parent sending megabytes would stop until the child read them.
Both processes share the file but not its offset (``pwrite``/``pread`` at explicit offsets).
Only for a child forked from this process: unpickling trusts what was pickled.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import struct
import tempfile

_WHERE = struct.Struct("<QQ")           # offset, length


class Spool:
    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self._receiver, self._sender = multiprocessing.Pipe(duplex=False)
        self._end = 0

    def reading(self) -> None:
        """In the child: only receive (so a parent that is gone reads as the end)."""
        self._sender.close()

    def writing(self) -> None:
        """In the parent: only send (so a child that is gone makes :meth:`send` say so)."""
        self._receiver.close()

    def send(self, value: object) -> bool:
        """Hand ``value`` on; False when the child no longer reads."""
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        _write_at(self._file.fileno(), data, self._end)
        try:
            self._sender.send_bytes(_WHERE.pack(self._end, len(data)))
        except OSError:                 # BrokenPipeError: the child ended
            return False
        self._end += len(data)
        return True

    def receive(self) -> object:
        """The next value; EOFError when the parent closed without sending it."""
        offset, length = _WHERE.unpack(self._receiver.recv_bytes())
        return pickle.loads(_read_at(self._file.fileno(), length, offset))

    def close(self) -> None:
        for end in (self._sender, self._receiver):
            end.close()
        self._file.close()


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read_at(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            raise EOFError("spool: the file ends before the value sent")
        chunks.append(chunk)
        length, offset = length - len(chunk), offset + len(chunk)
    return b"".join(chunks)
