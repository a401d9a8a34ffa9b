"""``python -m streamer.cli``: the ``facestream`` command without its installed script
(the tests run it so, with the interpreter they run under)."""
import sys

from streamer.cli import main

if __name__ == "__main__":
    sys.exit(main())
