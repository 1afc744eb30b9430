"""dsae: disentangled sequence manipulation with the Disentangled Sequential Autoencoder.

The command-line app lives in :mod:`dsae_cli.app`; the model itself (pure torch) in the
top-level :mod:`models` package. Nothing heavy is imported here, so ``dsae --help`` stays fast.
"""

__version__ = "0.1.0"
