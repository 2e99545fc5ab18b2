import sys

from headroom_dev.cli import main

sys.exit(main())
