"""Loading TensorFlow without the lines its native libraries print while they load.

While `import tensorflow` loads its shared libraries, they log a few lines ("oneDNN custom
operations are on", "Could not find cuda drivers", "All log messages before
absl::InitializeLog() is called ...") before any logging setting is read, so
TF_CPP_MIN_LOG_LEVEL cannot hide them; only the process's stderr (file descriptor 2) sees
them. `import_tensorflow_quietly` points that descriptor at a temporary file while it
imports TensorFlow and lists the devices (where a machine without a GPU logs a failed
cuInit), then writes back every line that is not such a start-up line: a Python warning, or
the message of an import that failed, still shows.

Nothing here changes what TensorFlow computes (TF_ENABLE_ONEDNN_OPTS is left as it is). The
command line also sets TF_CPP_MIN_LOG_LEVEL=3 (unless it is set already or --verbose is
given), which keeps TensorFlow's later C++ info, warning and error lines off its stderr.
"""

import contextlib
import os
import re
import sys
import tempfile
import threading

# The native libraries' log format (absl): severity and date, time, thread, file:line].
_NATIVE_LOG_LINE = re.compile(r"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] ")
# SentencePiece's own log format: file(line) LOG(INFO) message.
_SENTENCEPIECE_INFO_LINE = re.compile(r"\w+\.cc\(\d+\) LOG\(INFO\) ")
_BANNER_LINES = ("WARNING: All log messages before absl::InitializeLog() is called are written "
                 "to STDERR",
                 # cpu_feature_guard's second line.
                 "To enable the following instructions:")


def import_tensorflow_quietly():
    """Imports TensorFlow (once per process) without its start-up lines; returns the module.

    Example:
        tf = import_tensorflow_quietly()  # as `import tensorflow as tf`, minus the log lines
    """
    if "tensorflow" not in sys.modules:
        with native_lines_hidden(is_start_up_line):
            import tensorflow

            # Finding the devices is when a machine without a GPU logs a failed cuInit.
            # Listing them fixes no setting: visible devices can still be chosen afterwards.
            tensorflow.config.list_physical_devices()
    return sys.modules["tensorflow"]


def is_start_up_line(line):
    """True for a line that TensorFlow's native libraries log while they load."""
    return bool(_NATIVE_LOG_LINE.match(line)) or line.startswith(_BANNER_LINES)


def is_sentencepiece_info_line(line):
    """True for the line SentencePiece's C++ code logs whenever it loads a model without a
    normalisation table of its own, as every model of this package is (the graph normalises
    the text before it)."""
    return bool(_SENTENCEPIECE_INFO_LINE.match(line))


# The descriptor is one per process: blocks that overlap (in threads, or nested) share the
# outermost block's redirection, which hides what any of them hides.
_hiding = []
_hiding_guard = threading.Lock()


@contextlib.contextmanager
def native_lines_hidden(is_hidden):
    """Collects what is written to file descriptor 2 meanwhile; writes back every line for
    which `is_hidden` is false.

    Native code writes to the descriptor itself, past `sys.stderr`, so only this hides it.
    """
    with _hiding_guard:
        _hiding.append(is_hidden)
        outermost = len(_hiding) == 1
        redirection = _redirect_stderr() if outermost else None
    try:
        yield
    finally:
        with _hiding_guard:
            if redirection is not None:
                _restore_stderr(*redirection, hidden=list(_hiding))
            _hiding.remove(is_hidden)


def _redirect_stderr():
    """Points descriptor 2 at a temporary file: (saved descriptor, file), or None where
    there is no usable stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None
    collected = tempfile.TemporaryFile()
    os.dup2(collected.fileno(), 2)
    return saved, collected


def _restore_stderr(saved, collected, hidden):
    """Points descriptor 2 back and writes what it collected, minus the `hidden` lines."""
    sys.stderr.flush()  # Python's own writes meanwhile belong to the collected part
    os.dup2(saved, 2)
    os.close(saved)
    with collected:
        collected.seek(0)
        kept = [line for line in collected.read().decode("utf-8", "replace").splitlines(True)
                if not any(is_hidden(line) for is_hidden in hidden)]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
