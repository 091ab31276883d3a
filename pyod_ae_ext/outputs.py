"""Writing output files without ever destroying an input.

Every file ``adscore`` writes (model files, score tables, plots, the example data) goes
through :func:`check_output_path` before any work starts and :func:`write_output` at
the end:

- an output that names one of the command's inputs (the data file, the model being
  read) is refused before anything is read, so ``fit data.csv -o data.csv`` cannot
  replace the data with a model;
- the output's directory must exist and be writable, so a long fit never ends in a
  permission error;
- a regular file is written atomically (a temporary file in the same directory, then
  a rename), so an interruption leaves the old file or none, never half of one; the
  temporary file is removed on errors, Ctrl-C and SIGTERM alike;
- a character device or a FIFO (``/dev/stdout``, ``/dev/null``, a named pipe) is
  written through, never replaced by a regular file; anything else that is not a
  regular file (a directory, a socket) is refused;
- a write error (a full disk, ``/dev/full``) is one :class:`AdscoreError`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

from .errors import AdscoreError, ParameterError

STDOUT = "-"


def check_output_path(output, inputs=(), option="-o") -> None:
    """Refuse ``output`` before any work when writing it would fail or destroy an input.

    ``inputs`` are the paths the command reads (``-`` and missing paths are skipped).
    """
    if output is None or str(output) == STDOUT:
        return
    path = Path(output)
    for source in inputs:
        if source is None or str(source) == STDOUT:
            continue
        if _same_file(path, Path(source)):
            raise ParameterError(f"{option} {output} is also an input of this command ({source}); "
                                 "write to another file")
    if path.exists() or path.is_symlink():
        _check_existing_target(path, option)
        if _is_stream(path):
            return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ParameterError(f"cannot write {option} {output}: directory {directory} does not exist")
    _probe_directory(directory, option, output)


def write_output(path, payload: bytes) -> None:
    """Write ``payload`` to ``path``: atomically for a regular file, through a device or FIFO.

    A regular file gets the old content or the new, never half (see :func:`streamed_output`).
    """
    with streamed_output(path) as handle:
        try:
            handle.write(payload)
        except OSError as exc:
            raise AdscoreError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def streamed_output(path):
    """Write ``path`` piece by piece: yield a binary file handle, publish it only on success.

    For a regular file the handle writes a temporary file beside ``path``; when the
    block ends normally the temporary file is flushed, synced and renamed onto
    ``path``. On any exception, Ctrl-C or SIGTERM (turned into an exception while the
    block runs) the temporary file is removed and ``path`` is left as it was, so an
    error in the millionth row of a streamed output leaves no partial file. A
    character device or a FIFO is written through instead. Failures to create, sync
    or rename the file are one :class:`AdscoreError`; errors raised by the block
    itself propagate unchanged (writes that fail inside the block raise ``OSError``,
    which the caller reports).

    Examples
    --------
    >>> with streamed_output("scores.csv") as handle:          # doctest: +SKIP
    ...     for chunk in chunks:
    ...         handle.write(chunk)
    """
    path = Path(path)
    if path.exists():
        _check_existing_target(path, "output")
        if _is_stream(path):
            try:
                handle = open(path, "wb")
            except OSError as exc:
                raise AdscoreError(f"cannot write {path}: {exc.strerror or exc}") from None
            try:
                yield handle
                try:
                    handle.close()
                except OSError as exc:
                    raise AdscoreError(f"cannot write {path}: {exc.strerror or exc}") from None
            finally:
                with contextlib.suppress(OSError):
                    handle.close()
            return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise AdscoreError(f"cannot write {path}: directory {directory} does not exist")
    with _removed_on_sigterm() as temporary_files:
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise AdscoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        temporary_files.append(tmp_name)
        handle = os.fdopen(fd, "wb")
        try:
            os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp creates 0600; keep the usual mode
            yield handle
            try:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
                os.replace(tmp_name, path)
            except OSError as exc:
                raise AdscoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        except BaseException:
            with contextlib.suppress(OSError):
                handle.close()  # may fail to flush (a full disk): the file goes anyway
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise


@contextlib.contextmanager
def _removed_on_sigterm():
    """While the block runs, SIGTERM removes the files named in the list the block gets,
    then ends the process as SIGTERM does.

    The handler does its work itself instead of raising an exception into whatever the
    main thread is running: an exception unwinding through a C extension that is
    reading (pyarrow on standard input, say) can abort the process instead of ending it.
    Main thread only (Python runs signal handlers there).
    """
    names: list = []
    if threading.current_thread() is not threading.main_thread():
        yield names
        return

    def handler(signum, frame):
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(name)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield names
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _probe_directory(directory: Path, option: str, output) -> None:
    """Create and remove a file in ``directory``: the one test that permissions, ACLs and
    read-only mounts all answer truthfully."""
    try:
        fd, name = tempfile.mkstemp(prefix=".adscore-probe.", dir=directory)
    except OSError as exc:
        raise ParameterError(f"cannot write {option} {output}: directory {directory} is not writable "
                             f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def _check_existing_target(path: Path, option: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling symlink, a permission problem
        if path.is_symlink():
            return  # writing creates the link's target, as for any new file
        raise ParameterError(f"cannot write {option} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ParameterError(f"{option} {path} is a directory; give a file name")
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise ParameterError(f"{option} {path} is not a regular file, a device or a pipe; give a file name")
    if stat.S_ISREG(mode) and not os.access(path, os.W_OK):
        raise ParameterError(f"cannot write {option} {path}: the file is read-only")


def _is_stream(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
