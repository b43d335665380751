"""`python -m cli ...` is `unipelt ...`."""

import sys

from cli.main import main

sys.exit(main())
