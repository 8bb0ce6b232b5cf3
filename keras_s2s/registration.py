"""Makes `import keras_s2s` enough for `keras.saving.load_model` to find the package's classes.

Keras finds a saved model's classes ("keras_s2s>Seq2Seq") only once the modules that define
them have run their `register_keras_serializable` decorators. Those modules import
TensorFlow, which `import keras_s2s` must not do (`keras-s2s --help` answers at once). So
the registration runs as soon as Keras itself is loaded: at once if it already is, or else
right after the `import keras` that any `load_model` call needs anyway.

Keras is often loaded from inside another import (TensorFlow Text's, while
`keras_s2s.text` is being imported, say); registering then would import the package's
modules while they are half made. The registration waits until that import has finished:
it runs after the next module of this package, or Keras, finishes loading with nothing of
this package, TensorFlow or Keras still loading.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# The modules whose import registers every serializable class of the package.
_REGISTERING_MODULES = ("keras_s2s.model", "keras_s2s.schedules")
# Packages that must have finished loading before the registration may import the above.
_WAITED_FOR = ("keras_s2s", "tensorflow", "tensorflow_text", "keras")


def register():
    """Imports the modules that register the package's Keras classes."""
    from keras_s2s.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)


def _loading(finished=None):
    """Whether a module of `_WAITED_FOR` other than `finished` (which has just run to its
    end, though its import has not returned yet) is still being loaded."""
    return any(getattr(getattr(module, "__spec__", None), "_initializing", False)
               for name, module in list(sys.modules.items())
               if name.split(".")[0] in _WAITED_FOR and name != finished)


class _AfterKerasLoads(importlib.abc.MetaPathFinder):
    """Wraps the loading of `keras` and of this package's modules so that, after one of them
    finishes with Keras loaded and nothing half made, `register` runs, once."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("keras_s2s."):
            return None
        sys.meta_path.remove(self)  # the other finders look it up, not this one again
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            self._register_when_ready(module.__name__)

        spec.loader.exec_module = exec_module
        return spec

    def _register_when_ready(self, finished):
        if "keras" not in sys.modules or _loading(finished) or self not in sys.meta_path:
            return
        sys.meta_path.remove(self)
        try:
            register()
        except ImportError as error:  # Keras must still load if this package cannot
            warnings.warn(f"keras_s2s could not register its Keras classes: {error}", stacklevel=2)


def install():
    """Registers now if Keras is loaded, or else as soon as it has loaded (see above).

    Called by the package's `__init__`, whose own import is still under way: submodules
    import fine from it, so only the other packages are waited for.
    """
    if "keras" in sys.modules and not _loading(finished="keras_s2s"):
        register()
    elif not any(isinstance(finder, _AfterKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasLoads())
