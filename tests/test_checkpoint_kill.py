"""SIGKILL during training with checkpoints: the folder can always be resumed, with the same numbers.

Each case runs the training in a child process that kills itself with SIGKILL (no Python cleanup,
like the OOM killer or a lost Binder pod) at one moment of the run, then a second child resumes
from the same folder and compares with an uninterrupted run. The moments cover a compiled call in
progress and each step of `tf.train.CheckpointManager.save`: files written but not yet listed in
the folder's ``checkpoint`` file, listed, and old files half deleted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = """
import json, os, signal, sys, warnings
import keras, numpy as np, tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management as cm
import infernet_tutorial as it

mode, kill_at, folder, data_dir = sys.argv[1:5]
x = it.load_mnist("train", n=60, binarize=None, data_dir=data_dir).images


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def model(seed):
    keras.utils.set_random_seed(seed)
    return it.MLPInferenceNetwork(2, hidden=16), it.BernoulliDecoder(2, hidden=16), it.standard_normal_prior(2)


def run(enc, dec, prior, checkpoint_dir=None, kill_step=None):
    base = it.elbo_objective(enc, dec, prior)
    optimizer = keras.optimizers.Adam(1e-3)

    def objective(xb, idx, seed):
        if kill_step is not None:  # mid-call: dies inside the compiled loop at this global step
            tf.py_function(lambda s: die() if int(s) == kill_step else None, [optimizer.iterations], [])
        return base(xb, idx, seed)

    return it.fit(objective, enc.trainable_variables + dec.trainable_variables, x, epochs=4, batch_size=20, seed=3,
                  binarize=True, optimizer=optimizer, progress=False, checkpoint_dir=checkpoint_dir)


if mode == "kill":
    if kill_at == "files-written":  # ckpt-9 written, the checkpoint file not yet updated
        real = cm.update_checkpoint_state_internal
        cm.update_checkpoint_state_internal = lambda *a, **k: die() if str(k.get("model_checkpoint_path", "")).endswith("ckpt-9") else real(*a, **k)
    if kill_at == "deleting-old":  # ckpt-9 listed, ckpt-3's index deleted, its data file not yet
        real_delete = cm._delete_file_if_exists
        cm._delete_file_if_exists = lambda spec: (real_delete(spec), die()) if spec.endswith("ckpt-3.index") else real_delete(spec)
    run(*model(0), checkpoint_dir=folder, kill_step=7 if kill_at == "mid-call" else None)
    print("RESULT", json.dumps({"killed": False}))
else:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc, dec, prior = model(1)  # other initial weights: the checkpoint must supply them
        resumed = run(enc, dec, prior, checkpoint_dir=folder)
    enc0, dec0, prior0 = model(0)
    whole = run(enc0, dec0, prior0)
    weights = [float(np.max(np.abs(a.numpy() - b.numpy())))
               for a, b in zip(enc.trainable_variables + dec.trainable_variables, enc0.trainable_variables + dec0.trainable_variables)]
    print("RESULT", json.dumps({
        "steps": resumed.steps, "resumed_steps": len(resumed.elbo), "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "elbo_diff": float(np.max(np.abs(resumed.elbo - whole.elbo[-len(resumed.elbo):]))),
        "weight_diff": max(weights), "moved": float(whole.elbo[-1] - whole.elbo[0]),
    }))
"""


def child(mode: str, kill_at: str, folder, data_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    args = [sys.executable, "-c", textwrap.dedent(CHILD), mode, kill_at, str(folder), str(data_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def result(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize(
    "kill_at, latest_before, resumed_steps",
    [("mid-call", "ckpt-6", 6), ("files-written", "ckpt-6", 6), ("deleting-old", "ckpt-9", 3)],
)
def test_sigkill_leaves_a_resumable_checkpoint(tmp_path, mnist_dir, kill_at, latest_before, resumed_steps):
    """4 epochs of 3 steps, a checkpoint after each epoch (steps 3, 6, 9, 12); killed during epoch 3."""
    folder = tmp_path / "ckpt"
    killed = child("kill", kill_at, folder, mnist_dir)
    assert killed.returncode == -signal.SIGKILL, f"the child was not killed:\n{killed.stdout[-500:]}{killed.stderr[-3000:]}"
    # the folder's `checkpoint` file (text) names the newest checkpoint; read here without TensorFlow
    assert (folder / "checkpoint").read_text().splitlines()[0] == f'model_checkpoint_path: "{latest_before}"'
    out = result(child("resume", kill_at, folder, mnist_dir))
    assert out["warnings"] == []  # the newest listed checkpoint is whole: no fallback to an older one
    assert out["steps"] == 12 and out["resumed_steps"] == resumed_steps  # only the missing steps
    assert out["moved"] > 1.0  # training changed the ELBO: the comparison is not trivial
    assert out["elbo_diff"] < 1e-3 and out["weight_diff"] < 1e-5, out
