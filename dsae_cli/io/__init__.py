"""Reading and writing: video and pictures (media), audio, files written atomically, plots."""
