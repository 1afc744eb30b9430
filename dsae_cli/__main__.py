"""``python -m dsae_cli`` runs the same app as the ``dsae`` console script."""

from dsae_cli.app import main

if __name__ == "__main__":
    main()
