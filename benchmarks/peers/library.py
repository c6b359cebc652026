"""This library: ``infernet_tutorial.train`` on the reference model, as the CLI and scripts call it, or
(``--jupyter``) as the notebooks do: inside a Jupyter kernel, where `loop.use_xla` gives a CPU XLA
only for the kernel's first `loop.XLA_KERNEL_BUDGET` XLA-eligible runs and `startup` picks oneDNN's
system allocator (the kernel is simulated by an IPython shell with a kernel, installed before the
library loads; this process's one `train` call is the kernel's first), or (``--jupyter --later``) as
a kernel's later runs, once that budget is spent (TensorFlow's kernels).

One ``train`` call for all epochs (its compiled epoch is traced once); the epoch time is the
library's own public ``History.call_times`` entry for that compiled call. In ``--serve`` mode the
per-call ``callback`` waits for the driver's next "epoch" line, and returns True (stop) when none comes.
"""
from __future__ import annotations

import os
import sys
import time
import types

import numpy as np

from benchmarks import peers


def act_as_jupyter_kernel() -> None:
    """Make `settings.in_jupyter_kernel` answer True: an ``IPython`` module whose shell has a kernel."""
    ipython = types.ModuleType("IPython")
    shell = types.SimpleNamespace(kernel=object())
    ipython.get_ipython = lambda: shell
    sys.modules["IPython"] = ipython


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    x = peers.load(args)
    if args.jupyter:
        act_as_jupyter_kernel()
    import infernet_tutorial as it
    from infernet_tutorial import loop, settings
    from infernet_tutorial.loop import use_xla

    if settings.in_jupyter_kernel() != args.jupyter:
        raise SystemExit(f"library peer: in_jupyter_kernel() is {settings.in_jupyter_kernel()}, expected {args.jupyter}")
    if args.later:
        loop.xla_fits = loop.XLA_KERNEL_BUDGET  # as after the kernel's budgeted XLA runs

    family = it.MLPInferenceNetwork(peers.LATENT) if args.kind == "mlp" else it.ConvInferenceNetwork(peers.LATENT)
    decoder = it.BernoulliDecoder(peers.LATENT, kind=args.kind)
    prior = it.standard_normal_prior(peers.LATENT)
    channel = peers.Channel(args)
    steps = args.epochs * (len(x) // peers.BATCH)
    xla = use_xla(None, family.trainable_variables + decoder.trainable_variables, steps)
    where = ("as the CLI and scripts call it" if not args.jupyter else
             "in a Jupyter kernel, as the notebooks call it" + (", after its XLA budget" if args.later else ""))
    pool = "oneDNN's system allocator" if os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR") == "1" else "TensorFlow's pool"
    channel.ready("library", f"infernet_tutorial.train defaults ({where}): XLA {xla} "
                  f"(its choice for {steps:,} steps of this model), {pool}")
    if not channel.next_epoch():
        return
    cpu_start = [time.process_time()]

    def after_call(history) -> bool:
        steps, seconds = history.call_times[-1]
        channel.report(steps * peers.BATCH, seconds, time.process_time() - cpu_start[0],
                       np.mean(history.elbo[-steps:]))
        more = channel.next_epoch()
        cpu_start[0] = time.process_time()
        return not more

    it.train(family, decoder, prior, x, epochs=args.epochs, batch_size=peers.BATCH,
             learning_rate=peers.LEARNING_RATE, seed=args.seed, progress=False, callback=after_call)


if __name__ == "__main__":
    main()
