import sys

from vanishing.cli import main

sys.exit(main())
