"""Training: the loop, its options (config) and run folder (runfolder), recipes, p(f) fitting and running several processes."""
