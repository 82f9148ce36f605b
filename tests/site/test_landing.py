"""The landing page tells readers the same two commands as the README."""

import re

from booktools import ROOT


def bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)]


def test_landing_page_shows_the_readme_commands():
    readme = bash_blocks((ROOT / "README.md").read_text(encoding="utf8"))[:2]
    landing = bash_blocks((ROOT / "book" / "index.md").read_text(encoding="utf8"))
    assert landing == readme, "book/index.md's commands differ from the README's"
