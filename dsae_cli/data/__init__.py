"""Data sets: Sprites rendered from the embedded LPC art, folders of clips and .npz files, speech corpora."""
