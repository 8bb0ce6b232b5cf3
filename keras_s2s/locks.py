"""One writer at a time: a lock per checkpoint directory and per export target, and exports
that appear whole or not at all.

Two trainings started on one checkpoint directory would interleave their vocabularies,
config and checkpoints; two exports to one folder would overwrite each other. `exclusive`
takes an operating-system lock (`fcntl.flock`) on a file in the folder: a second process
asking for it fails at once with the holder's process id, and the lock goes when its holder
exits, however it exits, so a crash leaves nothing stale behind. Locks are per process and
re-entrant: code that holds a folder's lock may call code that takes it again.

`write_whole` writes an export into a hidden sibling folder and renames it into place, so a
reader (a model server watching the folder) never sees half a version. The rename replaces
nothing but an empty folder, so even two writers that got past the lock cannot both claim
one target.

On systems without `fcntl` (Windows) no lock is taken, so there two writers are not kept
apart.
"""

import contextlib
import errno
import glob
import os
import shutil
import threading

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"
# Lock files this process holds: path -> [holders, descriptor]. Threads of one process share
# a folder's lock (the lock keeps other processes out); the last holder to leave releases it.
_held = {}
_held_guard = threading.Lock()


class FolderInUseError(RuntimeError):
    """Another process holds the lock on a folder this one must write to."""


@contextlib.contextmanager
def exclusive(folder, what="folder", lock_name=LOCK_FILE, remove_after=False):
    """Holds the lock on `folder` (created if missing) for the duration of the block.

    Args:
        folder: the folder to write to.
        what: the argument that named it, for the error message ("checkpoint_dir").
        lock_name: the lock file's name inside `folder`.
        remove_after: delete the lock file on release (for folders users publish, such as a
            model's versions). A process that locked the file just before it was deleted
            sees that it is gone and locks the new one instead, so deleting it never lets
            two holders in.

    Raises:
        FolderInUseError: another process holds it; the message names that process.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.realpath(os.path.join(folder, lock_name))
    with _held_guard:
        if path not in _held:
            _held[path] = [0, _lock(path, folder, what) if fcntl else None]
        _held[path][0] += 1
    try:
        yield
    finally:
        with _held_guard:
            _held[path][0] -= 1
            if not _held[path][0]:
                _, descriptor = _held.pop(path)
                if remove_after:
                    with contextlib.suppress(OSError):
                        os.remove(path)
                if descriptor is not None:
                    os.close(descriptor)  # releases the lock


def _lock(path, folder, what):
    """A descriptor of the lock file at `path`, locked; raises FolderInUseError if taken."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.read(descriptor, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(descriptor)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise FolderInUseError(
                f"{what}={folder!r} is in use by process {holder}, which is writing to it; "
                "wait for it to finish, or choose another folder.") from None
        try:
            still_there = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            still_there = False
        if still_there:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
            return descriptor
        os.close(descriptor)  # its holder deleted it as we locked it: lock the new one


def refuse_non_empty(path, what):
    """Raises ValueError if `path` is given, exists and is not an empty folder."""
    if path and os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ValueError(f"{what}={path!r} exists and is not empty; choose a new directory so "
                         "that no export is overwritten.")


def write_whole(target, write, what="export_path"):
    """Calls `write(folder)` on a hidden sibling of `target`, then renames it to `target`.

    Args:
        target: the folder to create; it must not exist, or be empty.
        write: a function that writes the export into the folder it is given.
        what: the argument that named `target`, for error messages.

    Returns:
        `target`.
    """
    parent, name = os.path.split(os.path.abspath(target))
    with exclusive(parent, what, lock_name=f".{name}.lock", remove_after=True):
        refuse_non_empty(target, what)
        # Any staging folder of this target is a crashed writer's, since we hold its lock.
        for stale in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.partial-*")):
            shutil.rmtree(stale, ignore_errors=True)
        staging = os.path.join(parent, f".{name}.partial-{os.getpid()}")
        try:
            write(staging)
            try:
                os.rename(staging, target)  # atomic; replaces only an empty folder
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise ValueError(f"{what}={target!r} was written by another export "
                                     "meanwhile; nothing was overwritten.") from None
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
