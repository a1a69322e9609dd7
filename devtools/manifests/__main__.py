import sys

from devtools.manifests.cli import main

sys.exit(main())
