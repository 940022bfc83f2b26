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


def test_the_layout_section_names_every_package_and_module_of_the_tree() -> None:
    # The layout is drawn from the tree: a package or module added, moved or renamed
    # without the README following fails here.
    section = README.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    words = set(block.replace("/", " / ").replace("(", " ").replace(")", " ").split())
    package = Path(__file__).resolve().parents[2] / "cleanroom"
    missing = []
    for init in sorted(package.rglob("__init__.py")):
        here = init.parent
        if here != package and here.name not in words:
            missing.append(f"{here.relative_to(package)}/")
        for module in sorted(here.glob("*.py")):
            if module.stem not in ("__init__", "__main__") and module.stem not in words:
                missing.append(str(module.relative_to(package)))
    assert not missing, f"README's layout does not name: {missing}"
