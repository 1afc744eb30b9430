"""One thin module per command: parse and validate options, then call an importable function."""
