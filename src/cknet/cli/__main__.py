"""``python -m cknet.cli`` (what ``torchrun -m cknet.cli train ...`` runs): the ``cknet`` command."""

from cknet.cli import main

raise SystemExit(main())
