"""Training throughput (images/s) of the reference model, every row measured in the same run.

Reference model: MLP encoder 784 -> 256 relu -> (10 loc, 10 softplus scale), decoder
10 -> 256 relu -> 784 Bernoulli logits, batch 100, Adam(1e-3), dynamic binarization, analytic KL.

Rows (one epoch over the same training images each turn):
  - the library's `fit` (via `infernet_tutorial.train`: the path the notebooks and the CLI use);
  - a bare TF + XLA epoch loop written here without the library (plain logits math, hand-written
    Adam): what the library's loop costs over the least it could do with the same compiler;
  - a plain Keras 3 ``model.fit`` with a custom ``train_step``;
  - plain PyTorch and Pyro SVI, when installed (benchmarks/requirements-peers.txt).

Rows are interleaved: after each of the library's epochs (its `callback`), every other row runs one
epoch, so a change of machine load hits all rows alike. The first ``warmup_epochs`` of every row
(compilation included) are dropped; the table reports the median of the timed epochs.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from .common import MODEL_FLOP_PER_IMAGE, Config, Row, median

BATCH = 100
LR = 1e-3


def reference_flops(latent: int = 10, hidden: int = 256, pixels: int = 784) -> float:
    """FLOP per image of the reference MLP, forward + backward (backward ~ 2x forward matmuls)."""
    macs = pixels * hidden + hidden * 2 * latent + latent * hidden + hidden * pixels
    return 3 * 2 * macs


# ---------------------------------------------------------------------------------------- rows
class LibraryRow:
    """`infernet_tutorial.train` itself; drives the other rows through its per-epoch callback."""

    name = "infernet_tutorial fit (one compiled epoch per call)"

    def __init__(self, x, kind: str):
        import infernet_tutorial as it

        self.x, self.kind = x, kind
        self.encoder = it.MLPInferenceNetwork(10) if kind == "mlp" else it.ConvInferenceNetwork(10)
        self.decoder = it.BernoulliDecoder(10, kind=kind)
        self.prior = it.standard_normal_prior(10)

    def run(self, epochs: int, after_epoch) -> list[float]:
        import infernet_tutorial as it

        history = it.train(self.encoder, self.decoder, self.prior, self.x, epochs=epochs, batch_size=BATCH,
                           learning_rate=LR, progress=False, callback=lambda h: after_epoch())
        self.history = history
        return [steps * BATCH / secs for steps, secs in history._chunk_times]


class BareXlaRow:
    """A whole epoch in one `tf.function(jit_compile=True)`, no library, no TFP, hand-written Adam."""

    name = "bare TF + XLA epoch loop (no library, no TFP; the brief's reference design)"

    def __init__(self, x, kind: str = "mlp"):
        import tensorflow as tf

        self.tf = tf
        rng = np.random.default_rng(1)

        def dense(i, o):
            w = rng.normal(size=(i, o)).astype(np.float32) * np.sqrt(2.0 / (i + o)).astype(np.float32)
            return [tf.Variable(w), tf.Variable(np.zeros(o, np.float32))]

        self.vars = dense(784, 256) + dense(256, 20) + dense(10, 256) + dense(256, 784)
        self.m = [tf.Variable(tf.zeros_like(v)) for v in self.vars]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in self.vars]
        self.t = tf.Variable(0.0)
        self.data = tf.constant(x)
        self.n = len(x)
        self.epoch_index = 0
        self.step = tf.function(self._epoch, jit_compile=True)

    def _epoch(self, batches, seed):
        tf = self.tf
        w1, b1, w2, b2, w3, b3, w4, b4 = self.vars

        def body(i):
            x = tf.gather(self.data, batches[i])
            s = tf.stack([seed, i])
            x = tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=s) < x, tf.float32)
            with tf.GradientTape() as tape:
                h = tf.nn.relu(x @ w1 + b1)
                loc, raw = tf.split(h @ w2 + b2, 2, axis=-1)
                scale = tf.nn.softplus(raw) + 1e-5
                z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=s + 1)
                logits = tf.nn.relu(z @ w3 + b3) @ w4 + b4
                ll = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)
                kl = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1.0 - 2.0 * tf.math.log(scale), -1)
                loss = -tf.reduce_mean(ll - kl)
            grads = tape.gradient(loss, self.vars)
            self.t.assign_add(1.0)
            lr = LR * tf.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
            for var, g, m, v in zip(self.vars, grads, self.m, self.v):
                m.assign_add(0.1 * (g - m))
                v.assign_add(0.001 * (g * g - v))
                var.assign_sub(lr * m / (tf.sqrt(v) + 1e-7))
            return (i + 1,)

        tf.while_loop(lambda i: i < batches.shape[0], body, (tf.constant(0),))
        return self.t

    def epoch(self) -> float:
        tf = self.tf
        steps = self.n // BATCH
        perm = np.random.default_rng(self.epoch_index).permutation(self.n)[: steps * BATCH].reshape(steps, BATCH)
        self.epoch_index += 1
        t0 = time.perf_counter()
        float(self.step(tf.constant(perm.astype(np.int32)), tf.constant(self.epoch_index, tf.int32)))
        return steps * BATCH / (time.perf_counter() - t0)


class KerasFitRow:
    """A Keras 3 model with a custom ``train_step``, trained by ``model.fit`` (defaults otherwise)."""

    name = "Keras 3 model.fit, custom train_step"

    def __init__(self, x, kind: str):
        import infernet_tutorial as it
        import keras
        import tensorflow as tf

        # The same layers as the library's (architecture identical), driven by plain Keras.
        enc = it.MLPInferenceNetwork(10) if kind == "mlp" else it.ConvInferenceNetwork(10)
        dec = it.BernoulliDecoder(10, kind=kind)

        class VAE(keras.Model):
            def __init__(self):
                super().__init__()
                self.trunk = enc.hidden if kind == "mlp" else enc.trunk
                self.loc_layer, self.scale_layer, self.decoder_net = enc.loc_layer, enc.scale_layer, dec.net

            def call(self, x):
                h = self.trunk(x)
                return self.loc_layer(h), self.scale_layer(h) + 1e-5

            def train_step(self, x):
                x = tf.cast(tf.random.uniform(tf.shape(x)) < x, tf.float32)
                with tf.GradientTape() as tape:
                    loc, scale = self(x, training=True)
                    z = loc + scale * tf.random.normal(tf.shape(loc))
                    logits = self.decoder_net(z)
                    ll = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)
                    kl = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1.0 - 2.0 * tf.math.log(scale), -1)
                    loss = -tf.reduce_mean(ll - kl)
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply(grads, self.trainable_variables)
                return {"elbo": -loss}

        self.model = VAE()
        self.model.compile(optimizer=keras.optimizers.Adam(LR))
        n = (len(x) // BATCH) * BATCH
        self.n = n
        # Built once, so a call's set-up is small; the epoch itself is timed by a callback (fair to Keras).
        self.dataset = tf.data.Dataset.from_tensor_slices(x[:n]).shuffle(n, seed=0).batch(BATCH).prefetch(2)
        self.timer = _epoch_timer()

    def epoch(self) -> float:
        with warnings.catch_warnings():  # "shuffle=True ... ignored": the dataset shuffles itself
            warnings.simplefilter("ignore", UserWarning)
            self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[self.timer])
        return self.n / self.timer.seconds


def _epoch_timer():
    """A Keras callback whose ``.seconds`` is the wall time from on_epoch_begin to on_epoch_end."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0

    return EpochTimer()


def _torch_modules(kind: str):
    import torch
    from torch import nn

    if kind == "mlp":
        trunk = nn.Sequential(nn.Linear(784, 256), nn.ReLU())
        width = 256
        decoder = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 784))
    else:  # the library's ConvInferenceNetwork / conv BernoulliDecoder ("same" padding)
        trunk = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(),
                              nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten())
        width = 7 * 7 * 32
        decoder = nn.Sequential(nn.Linear(10, 7 * 7 * 32), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                                nn.ConvTranspose2d(32, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU(),
                                nn.Conv2d(16, 1, 3, 1, 1), nn.Flatten())

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.loc, self.scale = trunk, nn.Linear(width, 10), nn.Linear(width, 10)

        def forward(self, x):
            h = self.trunk(x)
            return self.loc(h), nn.functional.softplus(self.scale(h)) + 1e-5

    torch.manual_seed(0)
    return Encoder(), decoder


class TorchRow:
    """Plain PyTorch: a Python loop over batches, autograd, torch.optim.Adam."""

    name = "PyTorch (plain training loop)"

    def __init__(self, x, kind: str):
        import torch

        self.torch = torch
        self.encoder, self.decoder = _torch_modules(kind)
        self.params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=LR)
        self.x = torch.from_numpy(x)

    def epoch(self) -> float:
        torch, F = self.torch, self.torch.nn.functional
        n = len(self.x)
        steps = n // BATCH
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(steps):
            x = torch.bernoulli(self.x[perm[i * BATCH : (i + 1) * BATCH]])
            loc, scale = self.encoder(x)
            z = loc + scale * torch.randn_like(loc)
            ll = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
            kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum(-1)
            loss = -(ll - kl).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return steps * BATCH / (time.perf_counter() - t0)


class PyroRow:
    """Pyro SVI with TraceMeanField_ELBO (analytic KL), pyro.optim.Adam."""

    name = "Pyro SVI (TraceMeanField_ELBO)"

    def __init__(self, x, kind: str = "mlp"):
        import pyro
        import pyro.distributions as dist
        import torch

        pyro.clear_param_store()
        encoder, decoder = _torch_modules(kind)

        def model(x):
            pyro.module("decoder", decoder)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 10), 1.0).to_event(1))
                pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

        def guide(x):
            pyro.module("encoder", encoder)
            with pyro.plate("data", x.shape[0]):
                loc, scale = encoder(x)
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

        self.torch = torch
        self.svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": LR}), loss=pyro.infer.TraceMeanField_ELBO())
        self.x = torch.from_numpy(x)

    def epoch(self) -> float:
        torch = self.torch
        n = len(self.x)
        steps = n // BATCH
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(steps):
            self.svi.step(torch.bernoulli(self.x[perm[i * BATCH : (i + 1) * BATCH]]))
        return steps * BATCH / (time.perf_counter() - t0)


def peers_available() -> dict:
    found = {}
    for mod in ("torch", "pyro"):
        try:
            __import__(mod)
            found[mod] = True
        except Exception:
            found[mod] = False
    return found


# ------------------------------------------------------------------------------------ roofline
def matmul_gflops(seconds: float = 2.0, size: int = 1024) -> dict:
    """float32 matmul GFLOP/s of this machine, measured now with TensorFlow and with NumPy (median of runs)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    out = {}
    ta, tb = tf.constant(a), tf.constant(b)
    for name, mm in (("tensorflow", lambda: tf.linalg.matmul(ta, tb).numpy()), ("numpy", lambda: a @ b)):
        mm()  # warm-up
        rates, t_end = [], time.perf_counter() + seconds / 2
        while time.perf_counter() < t_end or len(rates) < 3:
            t0 = time.perf_counter()
            mm()
            rates.append(flop / (time.perf_counter() - t0) / 1e9)
        out[name] = median(rates)
    return out


# ---------------------------------------------------------------------------------------- table
def measure(x, kind: str, cfg: Config) -> dict:
    """img/s per timed epoch for every row, interleaved epoch by epoch."""
    lib = LibraryRow(x, kind)
    peers = []
    if kind == "mlp":
        peers.append(BareXlaRow(x))
    if cfg.keras:
        peers.append(KerasFitRow(x, kind))
    have = peers_available() if cfg.peers else {"torch": False, "pyro": False}
    if have["torch"]:
        peers.append(TorchRow(x, kind))
    if have["pyro"] and kind == "mlp":
        peers.append(PyroRow(x, kind))
    rates = {row.name: [] for row in peers}
    # CPU seconds (all threads of this process) per epoch: on a shared machine a row may get less
    # than the cores it asks for; images per CPU-second says what each row costs whatever it got.
    cpu = {lib.name: [], **{row.name: [] for row in peers}}
    lib_started = [time.process_time()]

    def after_epoch():
        cpu[lib.name].append(time.process_time() - lib_started[0])
        for row in peers:
            c0 = time.process_time()
            rates[row.name].append(row.epoch())
            cpu[row.name].append(time.process_time() - c0)
        lib_started[0] = time.process_time()

    repeats = cfg.repeats if kind == "mlp" else cfg.conv_repeats
    lib_rates = lib.run(cfg.warmup_epochs + repeats, after_epoch)
    rates = {lib.name: lib_rates, **rates}
    images = (len(x) // BATCH) * BATCH
    return {
        "rates": {name: r[cfg.warmup_epochs :] for name, r in rates.items()},
        "per_cpu_second": {name: [images / c for c in cs[cfg.warmup_epochs :]] for name, cs in cpu.items()},
        "library": lib.name,
        "history": lib.history,
        "missing": [m for m, ok in have.items() if not ok] if cfg.peers else ["torch", "pyro"],
    }


def run(cfg: Config, x=None) -> list[Row]:
    import infernet_tutorial as it

    if x is None:
        x = it.load_mnist("train", n=cfg.n_train, data_dir=cfg.data_dir).images
    rows: list[Row] = []
    gflops = matmul_gflops(cfg.matmul_seconds)
    peak = max(gflops.values())
    flop = reference_flops()
    for kind, n in (("mlp", len(x)), ("conv", min(len(x), cfg.conv_n_train or len(x)))):
        result = measure(np.ascontiguousarray(x[:n]), kind, cfg)
        lib_rate = median(result["rates"][result["library"]])
        table = f"throughput_{kind}"
        for name, r in result["rates"].items():
            rows.append(Row(table, name, median(r), "img/s", ratio=median(r) / lib_rate,
                            extra={"runs": [round(v, 1) for v in r], "images": n, "batch": BATCH,
                                   "img_per_cpu_second": median(result["per_cpu_second"][name])}))
        for mod in result["missing"]:
            if kind == "conv" and mod == "pyro":
                continue
            why = "not installed (pip install -r benchmarks/requirements-peers.txt)" if cfg.peers else f"skipped ({cfg.mode} mode)"
            rows.append(Row(table, {"torch": "PyTorch", "pyro": "Pyro SVI"}[mod], None, "img/s", note=f"{mod} {why}"))
        if kind == "mlp":
            roof = peak * 1e9 / flop
            rows.append(Row(table, f"roofline: float32 matmul {peak:.1f} GFLOP/s / {flop / 1e6:.2f} MFLOP per image",
                            roof, "img/s", ratio=roof / lib_rate,
                            extra={"gflops": gflops, "flop_per_image": flop, "library_fraction": lib_rate / roof}))
    return rows


assert abs(reference_flops() - MODEL_FLOP_PER_IMAGE) / MODEL_FLOP_PER_IMAGE < 0.01
