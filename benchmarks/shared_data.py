"""Where the benchmarks find the project's data: ``$CKNET_SHARED`` when set (as for the
tests), else the repository's own copy, ``tests/fixtures``."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("CKNET_SHARED", Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
IU_XRAY = SHARED / "data" / "iu_xray"
"""IU X-Ray: ``annotation.json`` (reports and the standard split), ``mesh_tags.csv``."""
