import sys

from sllm.cli import main

sys.exit(main())
