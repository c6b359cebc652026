"""Keras 3 ``model.fit`` (TensorFlow backend) on the reference model, or the conv model.

Tuned (default of this script): ``compile(jit_compile=True, steps_per_execution=<one epoch>)``.
Keras's docs (keras.io/api/models/model_training_apis, ``Model.compile``): ``steps_per_execution`` is
"the number of batches to run during each a single compiled function call", which "can greatly
improve performance on TPUs or small models with a large Python overhead"; ``jit_compile`` turns on
XLA. ``--defaults``: ``compile()`` with its defaults, i.e. ``steps_per_execution=1`` and
``jit_compile="auto"``, which on the TensorFlow backend means *no* XLA on a CPU-only machine
(keras/src/trainers/trainer.py, ``_resolve_auto_jit_compile``: "Disable XLA on CPU-only machines").

The model is plain Keras layers with a custom ``train_step`` (keras.io guide "Customizing what
happens in fit() with TensorFlow"), its random numbers from TensorFlow's ``tf.random`` ops (seeded by
``keras.utils.set_random_seed``): ``keras.random`` with a ``SeedGenerator`` (stateless ops) made the
``jit_compile=True`` epoch about 5x slower on this CPU, so the tuned row would be no Keras user's best.
The data is the NumPy array itself, ``fit(x, batch_size=100, shuffle=True)``: Keras batches and shuffles it.
"""
from __future__ import annotations

import os

from benchmarks import peers


def build(kind: str, seed: int):
    """The VAE as a ``keras.Model`` with its own ``train_step``; layers built."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf
    from keras import layers

    if kind == "mlp":
        trunk = [layers.Dense(peers.HIDDEN, activation="relu")]
        decoder = [layers.Dense(peers.HIDDEN, activation="relu"), layers.Dense(peers.PIXELS)]
    else:  # infernet_tutorial's ConvInferenceNetwork and conv BernoulliDecoder
        trunk = [layers.Reshape((28, 28, 1)), layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                 layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"), layers.Flatten()]
        decoder = [layers.Dense(7 * 7 * 32, activation="relu"), layers.Reshape((7, 7, 32)),
                   layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
                   layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
                   layers.Conv2D(1, 3, padding="same"), layers.Flatten()]

    class VAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.trunk, self.decoder = keras.Sequential(trunk), keras.Sequential(decoder)
            self.loc = layers.Dense(peers.LATENT)
            self.scale = layers.Dense(peers.LATENT, activation="softplus")
            self.elbo = keras.metrics.Mean(name="elbo")  # the epoch's mean, reset by fit each epoch

        @property
        def metrics(self):
            return [self.elbo]

        def build(self, input_shape):
            self.trunk.build(input_shape)
            width = self.trunk.compute_output_shape(input_shape)
            self.loc.build(width)
            self.scale.build(width)
            self.decoder.build((None, peers.LATENT))

        def call(self, x):
            h = self.trunk(x)
            return self.loc(h), self.scale(h) + peers.MIN_SCALE

        def train_step(self, x):
            x = tf.cast(tf.random.uniform(tf.shape(x)) < x, tf.float32)
            with tf.GradientTape() as tape:
                loc, scale = self(x, training=True)
                z = loc + scale * tf.random.normal(tf.shape(loc))
                logits = self.decoder(z)
                log_lik = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)
                kl = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1.0 - 2.0 * tf.math.log(scale), -1)
                loss = -tf.reduce_mean(log_lik - kl)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            self.elbo.update_state(-loss)
            return {"elbo": self.elbo.result()}

    keras.utils.set_random_seed(seed)
    model = VAE()
    model.build((None, peers.PIXELS))
    return model


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    x = peers.load(args)
    model = build(args.kind, args.seed)
    import keras

    steps = len(x) // peers.BATCH
    if args.defaults:
        model.compile(optimizer=keras.optimizers.Adam(peers.LEARNING_RATE))
    else:
        model.compile(optimizer=keras.optimizers.Adam(peers.LEARNING_RATE), jit_compile=True,
                      steps_per_execution=steps)
    channel = peers.Channel(args)
    channel.ready("keras_fit" + ("_defaults" if args.defaults else ""),
                  f"keras {keras.__version__} ({keras.backend.backend()}), jit_compile={model.jit_compile}, "
                  f"steps_per_execution={model.steps_per_execution}")
    if not channel.next_epoch():
        return
    watch = peers.Stopwatch()

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            watch.start()

        def on_epoch_end(self, epoch, logs=None):
            channel.report(len(x), *watch.read(), logs["elbo"])
            if not channel.next_epoch():
                self.model.stop_training = True

    model.fit(x, batch_size=peers.BATCH, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[Report()])


if __name__ == "__main__":
    main()
