"""`python -m keras_aff.cli`: the same as the `keras-aff` command."""

import sys

from keras_aff.cli import main

if __name__ == "__main__":
    sys.exit(main())
