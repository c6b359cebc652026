"""Plain PyTorch: a Python loop over batches, autograd, ``torch.optim.Adam``; reference or conv model.

Settings from PyTorch's Performance Tuning Guide (pytorch.org/tutorials/recipes/recipes/tuning_guide):
its CPU advice is about threads and memory placement; PyTorch's default of one OpenMP thread per
physical core is kept (no ``torch.set_num_threads``, no OMP_* variables), and the guide's general
advice is followed: ``zero_grad(set_to_none=True)`` (the default since 2.0). No ``torch.compile``:
this row is the plain eager loop a PyTorch user writes first.
"""
from __future__ import annotations

from benchmarks import peers


def modules(kind: str):
    """(inference network, decoder): the same layers as the library's (conv: "same" padding)."""
    from torch import nn

    if kind == "mlp":
        trunk, width = nn.Sequential(nn.Linear(peers.PIXELS, peers.HIDDEN), nn.ReLU()), peers.HIDDEN
        decoder = nn.Sequential(nn.Linear(peers.LATENT, peers.HIDDEN), nn.ReLU(), nn.Linear(peers.HIDDEN, peers.PIXELS))
    else:
        trunk = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(),
                              nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten())
        width = 7 * 7 * 32
        decoder = nn.Sequential(nn.Linear(peers.LATENT, width), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                                nn.ConvTranspose2d(32, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU(),
                                nn.Conv2d(16, 1, 3, 1, 1), nn.Flatten())

    class InferenceNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = trunk
            self.loc, self.scale = nn.Linear(width, peers.LATENT), nn.Linear(width, peers.LATENT)

        def forward(self, x):
            h = self.trunk(x)
            return self.loc(h), nn.functional.softplus(self.scale(h)) + peers.MIN_SCALE

    return InferenceNetwork(), decoder


def main(argv=None) -> None:
    args = peers.parse_args(argv, __doc__)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        peers.missing("torch")
    x = peers.load(args)
    torch.manual_seed(args.seed)
    network, decoder = modules(args.kind)
    optimizer = torch.optim.Adam([*network.parameters(), *decoder.parameters()], lr=peers.LEARNING_RATE)
    data = torch.from_numpy(x)
    channel = peers.Channel(args)
    channel.ready("torch_plain", f"torch {torch.__version__}, {torch.get_num_threads()} threads (default)")
    while channel.next_epoch():
        watch = peers.Stopwatch().start()
        total = 0.0
        for rows in torch.randperm(len(data)).view(-1, peers.BATCH):
            xb = torch.bernoulli(data[rows])
            loc, scale = network(xb)
            z = loc + scale * torch.randn_like(loc)
            log_lik = -F.binary_cross_entropy_with_logits(decoder(z), xb, reduction="none").sum(-1)
            kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum(-1)
            loss = -(log_lik - kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        elbo = -float(total) / (len(data) // peers.BATCH)
        channel.report(len(data), *watch.read(), elbo)


if __name__ == "__main__":
    main()
