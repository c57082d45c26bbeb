import sys

from skyline_analyzer.cli import main

sys.exit(main())
