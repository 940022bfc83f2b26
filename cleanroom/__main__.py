"""``python -m cleanroom`` is the ``cleanroom`` command."""

from cleanroom.cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module too
    main()
