"""A bare TensorFlow + XLA loop, written here without the library, TFP or Keras: the reference MLP model,
a whole epoch in one ``tf.function(jit_compile=True)`` (a ``tf.while_loop`` over its steps), plain
logits maths and a hand-written Adam. What the library's loop costs over the least TensorFlow can
do with the same compiler; beside the JAX row, TensorFlow's XLA path vs JAX's.
"""
from __future__ import annotations

import numpy as np

from benchmarks import peers


class BareModel:
    """Eight variables (four Dense layers' kernels and biases) and Adam's two moments for each."""

    def __init__(self, seed: int):
        import tensorflow as tf

        rng = np.random.default_rng(seed)

        def dense(i, o):
            limit = np.sqrt(6.0 / (i + o))
            return [tf.Variable(rng.uniform(-limit, limit, (i, o)).astype(np.float32)), tf.Variable(tf.zeros(o))]

        h, d, p = peers.HIDDEN, peers.LATENT, peers.PIXELS
        self.vars = dense(p, h) + dense(h, 2 * d) + dense(d, h) + dense(h, p)
        self.m = [tf.Variable(tf.zeros_like(v)) for v in self.vars]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in self.vars]
        self.t = tf.Variable(0.0)
        self.epoch = tf.function(self._epoch, jit_compile=True)

    def _step(self, x, seed):
        """One Adam step on the binary batch ``x: [100, 784]``; returns its mean ELBO."""
        import tensorflow as tf

        w1, b1, w2, b2, w3, b3, w4, b4 = self.vars
        with tf.GradientTape() as tape:
            loc, raw = tf.split(tf.nn.relu(x @ w1 + b1) @ w2 + b2, 2, axis=-1)
            scale = tf.nn.softplus(raw) + peers.MIN_SCALE
            z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=seed)
            logits = tf.nn.relu(z @ w3 + b3) @ w4 + b4
            log_lik = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)
            kl = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1.0 - 2.0 * tf.math.log(scale), -1)
            loss = -tf.reduce_mean(log_lik - kl)
        grads = tape.gradient(loss, self.vars)
        self.t.assign_add(1.0)
        lr = peers.LEARNING_RATE * tf.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
        for var, g, m, v in zip(self.vars, grads, self.m, self.v):
            m.assign_add(0.1 * (g - m))
            v.assign_add(0.001 * (g * g - v))
            var.assign_sub(lr * m / (tf.sqrt(v) + 1e-7))
        return -loss

    def _epoch(self, data, order, seed):
        """``order: [steps, 100]`` row numbers of ``data``; returns the epoch's mean ELBO."""
        import tensorflow as tf

        def body(i, total):
            x = tf.gather(data, order[i])
            s = tf.stack([seed, i])
            x = tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=s) < x, tf.float32)
            return i + 1, total + self._step(x, s + 1)

        _, total = tf.while_loop(lambda i, _: i < tf.shape(order)[0], body, (tf.constant(0), tf.constant(0.0)))
        return total / tf.cast(tf.shape(order)[0], tf.float32)


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    x = peers.load(args)
    import tensorflow as tf

    model = BareModel(args.seed)
    data = tf.constant(x)
    rng = np.random.default_rng(args.seed)
    channel = peers.Channel(args)
    channel.ready("tf_xla_bare", f"tensorflow {tf.__version__}, tf.function(jit_compile=True) per epoch")
    while channel.next_epoch():
        watch = peers.Stopwatch().start()
        order = tf.constant(peers.epoch_order(len(x), rng).astype(np.int32))
        elbo = float(model.epoch(data, order, tf.constant(channel.done, tf.int32)))
        channel.report(len(x), *watch.read(), elbo)


if __name__ == "__main__":
    main()
