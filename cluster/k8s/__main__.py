import sys

from cluster.k8s.cli import main

sys.exit(main())
