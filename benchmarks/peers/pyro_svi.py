"""Pyro SVI on the reference model: ``JitTraceMeanField_ELBO`` (analytic KL, compiled by the PyTorch JIT).

Pyro's tutorial "Using the PyTorch JIT Compiler with Pyro" (pyro.ai/examples/jit.html): a model
with static structure can use the ``Jit*`` version of its ELBO; tensors go in as positional
arguments. ``TraceMeanField_ELBO`` uses the analytic KL where one is registered (Normal vs Normal),
as the other rows do. Same networks as the PyTorch row; ``pyro.optim.Adam``; PyTorch's default threads.
``--defaults``: the plain ``TraceMeanField_ELBO`` (no JIT), shown beside it: with PyTorch 2.13 the
JIT version was the slower of the two here.
"""
from __future__ import annotations

import warnings

from benchmarks import peers


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    try:
        import pyro
        import pyro.distributions as dist
        import torch
    except ImportError:
        peers.missing("pyro-ppl")
    from benchmarks.peers.torch_plain import modules

    x = peers.load(args)
    pyro.set_rng_seed(args.seed)
    network, decoder = modules(args.kind)

    def model(xb):
        pyro.module("decoder", decoder)
        with pyro.plate("data", xb.shape[0]):
            z = pyro.sample("z", dist.Normal(xb.new_zeros(xb.shape[0], peers.LATENT), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=xb)

    def guide(xb):
        pyro.module("network", network)
        with pyro.plate("data", xb.shape[0]):
            loc, scale = network(xb)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    loss = pyro.infer.TraceMeanField_ELBO() if args.defaults else pyro.infer.JitTraceMeanField_ELBO()
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": peers.LEARNING_RATE}), loss=loss)
    data = torch.from_numpy(x)
    channel = peers.Channel(args)
    channel.ready("pyro_svi" + ("_defaults" if args.defaults else ""), f"pyro {pyro.__version__}, torch "
                  f"{torch.__version__}, {torch.get_num_threads()} threads; {type(loss).__name__}")
    while channel.next_epoch():
        watch = peers.Stopwatch().start()
        total = 0.0
        with warnings.catch_warnings():  # the JIT's tracer warnings on the first step
            warnings.simplefilter("ignore")
            for rows in torch.randperm(len(data)).view(-1, peers.BATCH):
                total += svi.step(torch.bernoulli(data[rows]))  # loss summed over the batch
        channel.report(len(data), *watch.read(), -total / len(data))


if __name__ == "__main__":
    main()
