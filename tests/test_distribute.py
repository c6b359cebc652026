"""`fit` under tf.distribute: a MirroredStrategy over 2 logical CPU devices takes the same steps as one device,
and a MultiWorkerMirroredStrategy over two worker processes on 127.0.0.1 takes the same steps as both.

The CPU must be split into logical devices (and a multi-worker strategy created) before TensorFlow
initializes its devices, so every check runs in fresh Python subprocesses.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np

import pytest

SETUP = """
import json, os, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import infernet_tutorial as it
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
"""


def run_script(body: str, timeout: int = 600) -> dict:
    code = textwrap.dedent(SETUP) + textwrap.dedent(body) + "\nprint('RESULT', json.dumps(out))\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"subprocess failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_mirrored_matches_one_device_step_for_step():
    """A noise-free objective (the exact ELBO of the linear-Gaussian model): same batches, same gradients.

    With 2 replicas each computes half of the batch; the summed gradients are those of the whole
    batch's mean, so every step and the final weights agree with the one-device run up to float
    rounding. A wrong scaling (e.g. averaging twice) or a wrong split would break this at once.
    """
    out = run_script(
        """
        model = it.LinearGaussian.orthogonal(8, 3, 0.5, seed=0)
        x = model.sample(400, seed=1)

        def objective_for(enc):
            return lambda xb, idx, seed: model.exact_elbo(xb, enc(xb))

        def train(strategy=None):
            with (strategy or tf.distribute.get_strategy()).scope():
                enc = it.LinearInferenceNetwork(3, 8)
            h = it.fit(objective_for(enc), enc.trainable_variables, x, epochs=5, batch_size=100,
                       learning_rate=1e-2, seed=3, progress=False, strategy=strategy)
            return h, [v.numpy() for v in enc.trainable_variables], enc

        h1, w1, _ = train()
        h2, w2, enc2 = train(strategy)
        out["mirrored_variable"] = type(enc2.A).__name__
        out["steps"] = [h1.steps, h2.steps]
        out["elbo_max_diff"] = float(np.max(np.abs(h1.elbo - h2.elbo)))
        out["weight_max_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2))
        out["elbo_first_last"] = [float(h1.elbo[0]), float(h1.elbo[-1])]
        """
    )
    assert out["replicas"] == 2
    assert "Mirrored" in out["mirrored_variable"], out
    assert out["steps"] == [20, 20]
    first, last = out["elbo_first_last"]
    assert last > first + 1.0, "training moved the weights, so the comparison is not trivial"
    assert out["elbo_max_diff"] < 1e-3, out
    assert out["weight_max_diff"] < 1e-4, out


def test_mirrored_vae_on_mnist_matches_within_monte_carlo_noise(mnist_dir):
    """The reference VAE with dynamic binarization: same global batch and seed, 2 replicas vs 1 device.

    Batches and binarized pixels are identical; only the reparameterization noise differs (each
    replica draws its own), so the two runs agree within Monte Carlo noise, not bit for bit.
    """
    out = run_script(
        f"""
        x = it.load_mnist("train", n=2000, data_dir={str(mnist_dir)!r}).images
        x_test = it.load_mnist("test", n=500, binarize="sample", data_dir={str(mnist_dir)!r}).images
        keras.utils.set_random_seed(0)
        enc0, dec0 = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10)
        init = [v.numpy() for v in enc0.trainable_variables + dec0.trainable_variables]
        prior = it.standard_normal_prior(10)

        def train(strategy=None):
            with (strategy or tf.distribute.get_strategy()).scope():
                enc, dec = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10)
                for v, w in zip(enc.trainable_variables + dec.trainable_variables, init):
                    v.assign(w)
            h = it.train(enc, dec, prior, x, epochs=3, seed=5, progress=False, strategy=strategy)
            return h, it.evaluate(x_test, enc, dec, prior, num_samples=10)["mean_elbo"]

        h1, e1 = train()
        h2, e2 = train(strategy)
        out["final"] = [h1.final_elbo, h2.final_elbo]
        out["test"] = [e1, e2]
        out["start"] = float(h1.elbo[:5].mean())
        """
    )
    (f1, f2), (t1, t2) = out["final"], out["test"]
    assert f1 > out["start"] + 100, out  # both learned a lot (from ~-543 nats)
    assert abs(f1 - f2) < 3.0, out
    assert abs(t1 - t2) < 3.0, out


@pytest.mark.parametrize("batch_size", [99])
def test_batch_must_split_evenly_across_replicas(batch_size):
    out = run_script(
        f"""
        enc = it.LinearInferenceNetwork(3, 8)
        model = it.LinearGaussian.orthogonal(8, 3, 0.5)
        try:
            it.fit(lambda xb, idx, s: model.exact_elbo(xb, enc(xb)), enc.trainable_variables, model.sample(200),
                   steps=2, batch_size={batch_size}, progress=False, strategy=strategy)
            out["error"] = None
        except ValueError as e:
            out["error"] = str(e)
        """
    )
    assert out["error"] == f"batch_size={batch_size} must be divisible by the 2 replicas of the strategy"


# ---------------------------------------------------------------- several workers (README: "Several machines")

TRAIN_REFERENCE = """
def train_reference(strategy, data_dir, out):
    \"\"\"The reference model (MLP inference network, Bernoulli decoder, d=10) for 8 steps of global batch 100.\"\"\"
    x = it.load_mnist("train", n=400, data_dir=data_dir).images
    keras.utils.set_random_seed(0)
    init = it.MLPInferenceNetwork(10).trainable_variables + it.BernoulliDecoder(10).trainable_variables
    with strategy.scope():
        enc, dec = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10)
        for v, w in zip(enc.trainable_variables + dec.trainable_variables, init):
            v.assign(w)
    h = it.train(enc, dec, it.standard_normal_prior(10), x, epochs=2, batch_size=100, seed=5, progress=False,
                 strategy=strategy)
    np.savez(out, elbo=h.elbo, replicas=strategy.num_replicas_in_sync,
             **{f"w{i}": v.numpy() for i, v in enumerate(enc.trainable_variables + dec.trainable_variables)})
"""

WORKER = """
import sys
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # from TF_CONFIG; before any other TensorFlow work
import keras
import numpy as np
import infernet_tutorial as it
""" + TRAIN_REFERENCE + """
train_reference(strategy, *sys.argv[1:3])
"""


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 (bound together so they differ, then released for the workers)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(data_dir, out_dir, timeout: int = 300) -> list[dict]:
    """Two worker processes with their own TF_CONFIG; always stopped, also on a timeout or a failure."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            env = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2")
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), str(out_dir / f"worker{index}.npz")],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        deadline = time.monotonic() + timeout  # for both workers together
        outputs = [proc.communicate(timeout=max(1.0, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for index, (proc, (_, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index} failed (exit {proc.returncode}):\n{err[-3000:]}"
    return [dict(np.load(out_dir / f"worker{index}.npz")) for index in range(2)]


def test_two_workers_match_one_process(mnist_dir, tmp_path):
    """MultiWorkerMirroredStrategy, two processes on loopback: each takes half of every global batch.

    Both workers must end with the same weights, equal (up to float rounding) to one process that
    splits each batch over 2 replicas (MirroredStrategy over 2 logical CPUs: the same batches, the
    same per-replica noise); a one-device run differs only by its Monte Carlo noise.
    """
    w0, w1 = run_workers(mnist_dir, tmp_path)
    run_script(
        TRAIN_REFERENCE
        + f"train_reference(strategy, {str(mnist_dir)!r}, {str(tmp_path / 'mirrored.npz')!r})\n"
        + f"train_reference(tf.distribute.get_strategy(), {str(mnist_dir)!r}, {str(tmp_path / 'one.npz')!r})\n"
    )
    mirrored, one = (dict(np.load(tmp_path / f"{name}.npz")) for name in ("mirrored", "one"))
    assert int(w0["replicas"]) == int(w1["replicas"]) == int(mirrored["replicas"]) == 2 and int(one["replicas"]) == 1
    weights = sorted(k for k in w0 if k.startswith("w"))
    assert len(weights) == 10
    for k in weights:
        np.testing.assert_allclose(w0[k], w1[k], rtol=0, atol=1e-6, err_msg=f"workers differ in {k}")
        np.testing.assert_allclose(w0[k], mirrored[k], rtol=0, atol=1e-5, err_msg=f"workers vs one process: {k}")
    np.testing.assert_allclose(w0["elbo"], mirrored["elbo"], rtol=1e-5)
    assert len(w0["elbo"]) == 8 and w0["elbo"][-1] > w0["elbo"][0] + 10  # it learned: the comparison is not trivial
    # one device: the same batches and pixels, other reparameterization noise (a few nats per step)
    assert abs(np.mean(w0["elbo"] - one["elbo"])) < 3.0
