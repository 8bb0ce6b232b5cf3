"""Makes `import keras_s2s` enough for `keras.saving.load_model` to find the package's classes.

Keras finds a saved model's classes ("keras_s2s>Seq2Seq") only once the modules that define
them have run their `register_keras_serializable` decorators. Those modules import
TensorFlow, which `import keras_s2s` must not do (`keras-s2s --help` answers at once). So
the registration runs as soon as Keras itself is loaded: at once if it already is, or else
right after the `import keras` that any `load_model` call needs anyway.
"""

import importlib
import importlib.abc
import importlib.util
import logging
import sys

# The modules whose import registers every serializable class of the package.
_REGISTERING_MODULES = ("keras_s2s.model", "keras_s2s.schedules")


def register():
    """Imports the modules that register the package's Keras classes."""
    from keras_s2s.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)


class _AfterKerasLoads(importlib.abc.MetaPathFinder):
    """Finds `keras` with the other finders and runs `register` once it has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once, and never for the finders' own lookup below
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            try:
                register()
            except Exception:  # Keras must load even if the package cannot
                logging.getLogger(__name__).warning(
                    "keras_s2s could not register its Keras classes", exc_info=True)

        spec.loader.exec_module = exec_module
        return spec


def install():
    """Registers now if Keras is loaded, or else right after it loads."""
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(finder, _AfterKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasLoads())
