"""Where the repository's own data is, for tests run from a checkout.

The tests are not shipped, so finding the repository from this file is sound here; code
that ships finds its profiles through the settings (`amana.settings.shipped_profiles_dir`).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "profiles"
PIXEL_RULES_DIR = PROFILES_DIR / "pixel"
