"""dsae: disentangled sequence manipulation with the Disentangled Sequential Autoencoder.

The Python API (what the commands call)::

    import dsae_cli as dsae

    model = dsae.load("sprites")
    a, b = dsae.read_video("examples/a.gif"), dsae.read_video("examples/b.gif")
    dsae.write_gif("swap.gif", model.swap(a, b))

The command-line app lives in :mod:`dsae_cli.app`; the model itself (pure torch) in the top-level
:mod:`models` package. The API is imported on first use, so ``dsae --help`` never loads torch.
"""

__version__ = "0.2.0"

__all__ = ["Clip", "Model", "convert_voice", "load", "read_video", "train", "write_gif", "write_video"]


def __getattr__(name: str):
    if name in __all__:
        from dsae_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'dsae_cli' has no attribute {name!r}")
