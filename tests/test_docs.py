"""The documentation holds together: the MkDocs site builds in strict mode (a broken link or
anchor between the pages fails it), and the README stays short with every relative link
pointing at a file that exists (and, into docs/, at a heading that exists)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README_MAX_LINES = 250  # the front door; everything longer belongs in a page of docs/
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code blocks that are neither absolute URLs nor in-page anchors."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return [target for target in LINK.findall(prose)
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]  # fmt: skip


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, as MkDocs and GitHub spell them."""
    prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")
            for heading in headings}  # fmt: skip


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    # when
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )

    # then
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "operate" / "index.html").exists()


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, len(lines)


def test_every_relative_link_of_the_readme_points_at_a_file_and_heading() -> None:
    # given
    links = relative_links((ROOT / "README.md").read_text())
    assert links, "the README links into nothing"

    # then
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), link
        if anchor:
            assert anchor in anchors(target), link
