"""The Disentangled Sequential Autoencoder (Li & Mandt, ICML 2018) in pure torch.

No files, no printing: checkpoints, media, recipes and the command line live in ``dsae_cli``.
"""

from models.config import DSAEConfig
from models.dsae import DSAE, Posterior

__all__ = ["DSAE", "DSAEConfig", "Posterior"]
