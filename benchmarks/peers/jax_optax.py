"""JAX + optax: the reference MLP model, a whole epoch in one ``jax.jit``-compiled ``lax.scan``.

Settings, each from JAX's docs: ``jax.jit`` around the whole epoch (JAX docs, "Just-in-time
compilation": jit the outermost function); the steps in ``jax.lax.scan``, which "is lowered to a
single WhileOp" instead of an unrolled Python loop (docs.jax.dev, jax.lax.scan); parameters and
optimizer state donated to the call (``donate_argnums``, JAX docs "Buffer donation") so the update
reuses their buffers. XLA's CPU backend uses every core by default; no flag is set.
"""
from __future__ import annotations

import numpy as np

from benchmarks import peers


def init_params(key, kind: str):
    """Glorot-uniform weights and zero biases (Keras's Dense default), as a dict of (w, b)."""
    import jax

    def dense(k, i, o):
        limit = np.sqrt(6.0 / (i + o))
        return jax.random.uniform(k, (i, o), minval=-limit, maxval=limit), jax.numpy.zeros(o)

    if kind != "mlp":
        raise ValueError("the JAX peer implements the reference MLP model only")
    k = jax.random.split(key, 5)
    h, d, p = peers.HIDDEN, peers.LATENT, peers.PIXELS
    return {"hidden": dense(k[0], p, h), "loc": dense(k[1], h, d), "scale": dense(k[2], h, d),
            "dec_hidden": dense(k[3], d, h), "dec_out": dense(k[4], h, p)}


def negative_elbo(params, x, key):
    """``x: [batch, 784]`` binary -> minus the mean one-sample ELBO with the analytic KL (nats)."""
    import jax
    import jax.numpy as jnp
    import optax

    def dense(name, v):
        w, b = params[name]
        return v @ w + b

    h = jax.nn.relu(dense("hidden", x))
    loc, scale = dense("loc", h), jax.nn.softplus(dense("scale", h)) + peers.MIN_SCALE
    z = loc + scale * jax.random.normal(key, loc.shape)
    logits = dense("dec_out", jax.nn.relu(dense("dec_hidden", z)))
    log_lik = -optax.sigmoid_binary_cross_entropy(logits, x).sum(-1)
    kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * jnp.log(scale)).sum(-1)
    return -(log_lik - kl).mean()


def make_epoch(optimizer, n: int):
    """A jitted ``epoch(params, opt_state, data, key) -> (params, opt_state, mean ELBO)``; data ``[n, 784]``."""
    import jax
    import optax

    def epoch(params, opt_state, data, key):
        def step(carry, rows):
            params, opt_state, key = carry
            key, k_pixels, k_z = jax.random.split(key, 3)
            x = (jax.random.uniform(k_pixels, (peers.BATCH, peers.PIXELS)) < data[rows]).astype(data.dtype)
            loss, grads = jax.value_and_grad(negative_elbo)(params, x, k_z)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), -loss

        k_order, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_order, n).reshape(n // peers.BATCH, peers.BATCH)
        (params, opt_state, _), elbos = jax.lax.scan(step, (params, opt_state, k_steps), order)
        return params, opt_state, elbos.mean()

    return jax.jit(epoch, donate_argnums=(0, 1))


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    try:
        import jax
        import optax
    except ImportError:
        peers.missing("jax, optax")
    x = peers.load(args)
    key = jax.random.PRNGKey(args.seed)
    key, k_init = jax.random.split(key)
    params = init_params(k_init, args.kind)
    optimizer = optax.adam(peers.LEARNING_RATE)
    opt_state = optimizer.init(params)
    data = jax.device_put(x)
    epoch = make_epoch(optimizer, len(x))
    channel = peers.Channel(args)
    channel.ready("jax_optax", f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform}; "
                  "jit(epoch) with lax.scan over its steps, params and Adam state donated")
    while channel.next_epoch():
        key, k_epoch = jax.random.split(key)
        watch = peers.Stopwatch().start()
        params, opt_state, elbo = epoch(params, opt_state, data, k_epoch)
        elbo = float(elbo)  # waits for the result
        channel.report(len(x), *watch.read(), elbo)


if __name__ == "__main__":
    main()
