"""Where the benchmarks find the project's shared data: ``$CKNET_SHARED`` when set (as
for the tests), else ``shared/`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("CKNET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IU_XRAY = SHARED / "data" / "iu_xray"
"""IU X-Ray: ``annotation.json`` (reports and the standard split), ``mesh_tags.csv``."""
