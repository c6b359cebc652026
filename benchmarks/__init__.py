"""Benchmarks of infernet-tutorial: ``python -m benchmarks [--quick] [--out PATH] [--json PATH]``.

- `throughput`: training images/s of the reference MLP model (and the conv model): the library's
  `train` against JAX + optax, Keras 3 ``fit`` (tuned and default), PyTorch, Pyro SVI and a bare
  TF + XLA loop, each peer a script in `benchmarks/peers/` run in its own process, rounds
  interleaved; with the library's fraction of the machine's float32 matmul roofline.
- `test_time`: inference for 1,000 new digits: inference network forward pass vs local VI vs semi-amortized.
- `memory`: variational parameters vs N (local factors vs inference network), crossover N; peak RSS of training.
- `notebooks`: wall time and peak RSS of every notebook (quick and full mode).

Every benchmark is a function ``run(cfg) -> list[Row]``; `benchmarks.common` holds the shared
pieces (config, timing, rows, machine description). A full run writes ``benchmarks/results.md``;
``--quick`` writes to ``--out`` or a temporary file.
"""
