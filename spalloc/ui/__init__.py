"""What the command-line tools and the notebook share: pure renderers and option definitions.

Both front ends import from here and neither imports the other. Nothing in this package touches the
network or a terminal, and it stays cheap to import (the CLIs' start-up path goes through it).
"""
