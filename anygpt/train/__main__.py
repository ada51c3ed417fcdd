import sys

from anygpt.train.command import main

sys.exit(main())
