from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.queue_fixtures import maintenance, side_effect_log, store

__all__ = ["maintenance", "side_effect_log", "store"]

HERE = Path(__file__).parent
# The plugin module is imported by name, here and in worker subprocesses.
sys.path.insert(0, str(HERE))
