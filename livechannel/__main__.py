import sys

from livechannel.cli import main

sys.exit(main())
