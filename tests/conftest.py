import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CASES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "expected.json").exists())


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(params=CASES)
def case(request) -> Path:
    return EXAMPLES / request.param
