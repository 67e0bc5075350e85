"""Where the tests find the repository and their contest folder, wherever a test file lives."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTESTS = ROOT / "contests"
TEST_CONTEST = ROOT / "tests" / "data" / "contest"
