"""The notebooks' interactive explorers, one module each, on a shared canvas (see `infernet_tutorial.widgets`)."""
