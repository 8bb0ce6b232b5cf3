"""`python -m keras_s2s` runs the command line."""

import sys

from keras_s2s.cli import main

sys.exit(main())
