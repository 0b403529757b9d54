import sys

from . import main

if __name__ == "__main__":  # also keeps worker processes (spawn) from running the command again
    sys.exit(main())
