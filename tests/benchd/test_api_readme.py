"""README's API table lists exactly the routes benchd serves (benchd.api.ENDPOINTS)."""
from __future__ import annotations

import re
from pathlib import Path

from benchd.api import ENDPOINTS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_api_table_matches_the_route_table() -> None:
    text = README.read_text()
    section = text.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`?]+)", section, re.M)

    def norm(path: str) -> str:  # README says {id} where the router says {job_id}
        return re.sub(r"{\w+}", "{}", path)
    assert sorted((m, norm(p)) for m, p in rows) == \
        sorted((ep.method, norm(ep.path)) for ep in ENDPOINTS)
