"""``python -m liveroom``: the same CLI as the ``liveroom`` command."""

from liveroom.cli import main

main()
