"""Training: the loop, recipes, p(f) fitting and running several processes."""
