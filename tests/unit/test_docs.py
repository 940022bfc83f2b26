"""The README is part of the product: it opens with the two commands and documents every setting."""

from pathlib import Path

from cleanroom.room.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:400]
    assert "make demo" in head and "make test" in head


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"| `{name}` |" in README, name


def test_the_design_lives_in_the_repository_and_the_readme_links_it() -> None:
    root = Path(__file__).resolve().parents[2]
    design = root / "docs" / "design.md"
    assert design.is_file() and "threat model" in design.read_text().lower()
    assert "](docs/design.md)" in README and "../shared" not in README
