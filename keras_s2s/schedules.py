"""Learning-rate schedules beyond Keras' own: the Transformer's warm-up then 1/√step decay.

    lr(step) = peak · min(step / warmup, √(warmup / step))

The learning rate rises linearly for `warmup_steps` steps, while Adam's moment estimates are
still poor and large updates would knock attention into a bad start, then decays as 1/√step.
It is the schedule of Vaswani et al. (2017, section 5.3) written with the peak learning rate
instead of d_model^-0.5, so that it reads like every other schedule's `learning_rate`.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_s2s")
class InverseSquareRootSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_learning_rate`, then decay with the inverse square root of the step.

    Example:
        >>> schedule = InverseSquareRootSchedule(1e-3, warmup_steps=100)
        >>> [round(float(schedule(step)), 6) for step in (50, 100, 400)]
        [0.0005, 0.001, 0.0005]
    """

    def __init__(self, peak_learning_rate, warmup_steps):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1; got {warmup_steps}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.maximum(tf.cast(step, tf.float32), 1.0)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        return self.peak_learning_rate * tf.minimum(step / warmup, tf.sqrt(warmup / step))

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}
