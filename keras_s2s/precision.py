"""Training precision: float32, or bfloat16 compute with float32 weights where the CPU has it.

Keras' "mixed_bfloat16" policy keeps every weight in float32 and runs the matmuls and the
activations in bfloat16. On a CPU with bfloat16 instructions (AVX512-BF16, AMX) a training
step then takes less time with the same training curve (`benchmarks/README.md`, "bfloat16
compute"); on one without them bfloat16 is emulated and slower. "auto" picks by the CPU.

Checkpoints hold float32 weights either way, so a run can resume in another precision, and
what is scored and exported is the float32 model with those weights (`float32_copy`).
"""

import contextlib

import keras

from keras_s2s.config import PRECISIONS
_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags (Linux); an empty set where they cannot be read."""
    try:
        with open(cpuinfo_path, encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def keras_policy(precision, flags=None):
    """The Keras dtype policy of `precision` ("float32", "mixed_bfloat16" or "auto")."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if precision != "auto":
        return precision
    flags = cpu_flags() if flags is None else flags
    return "mixed_bfloat16" if flags & set(_BFLOAT16_FLAGS) else "float32"


@contextlib.contextmanager
def building_under(policy):
    """Keras layers built inside the block take `policy`; the global policy is restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_copy(model):
    """`model` itself if it computes in float32, else a float32 `Seq2Seq` with its weights."""
    if model.compute_dtype == "float32":
        return model
    with building_under("float32"):
        copy = type(model)(model.model_config, model.source_text.vocabulary,
                           model.target_text.vocabulary)
    copy.set_weights(model.get_weights())
    return copy
