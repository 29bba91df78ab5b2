"""One module per noun of the `remit` command line; each exposes `register(app)`."""
