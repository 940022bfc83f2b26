from pathlib import Path

import pytest

from cleanroom.contract.spec import ColumnType, IdType, load_spec, parse_spec
from cleanroom.errors import SpecError

GOOD = """\
dataset: orders
identifiers:            # input column -> identifier type (phone | email | card)
  mobile: phone
  mail: email
columns:
  ordered_at: timestamp
  city: category
  amount: number
time: ordered_at
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_design_example_is_accepted(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.identifiers == {"mobile": IdType.phone, "mail": IdType.email}
    assert spec.columns["amount"] is ColumnType.number
    assert spec.input_columns == ["mobile", "mail", "ordered_at", "city", "amount"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("mobile: phone", "mobile: fax"), "identifiers.mobile"),
        (GOOD.replace("amount: number", "amount: money"), "columns.amount"),
        (GOOD.replace("time: ordered_at", "time: city"), "time column 'city'"),
        (GOOD.replace("dataset: orders", "dataset: Orders!"), "dataset"),
        (GOOD + "extra: 1\n", "extra"),
        (GOOD.replace("  mail: email\n", "  mail: email\n  city: phone\n"), "both an identifier"),
        ("dataset: x\nidentifiers: {}\n", "identifiers"),
        ("dataset: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_bad_spec_names_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_a_solar_hijri_column_is_declared_in_the_long_form() -> None:
    spec = parse_spec(
        {
            "dataset": "orders",
            "identifiers": {"mobile": "phone"},
            "columns": {"at": {"type": "timestamp", "calendar": "jalali"}, "city": "category"},
            "time": "at",
        }
    )
    assert spec.columns["at"].value == "timestamp" and spec.calendar("at").value == "jalali"
    assert spec.calendar("city").value == "gregorian"
    dumped = spec.model_dump(mode="json")
    assert dumped["calendars"] == {"at": "jalali"} and parse_spec(dumped) == spec
    # without Solar Hijri columns a spec dumps as it always did
    plain = parse_spec({"dataset": "orders", "identifiers": {"m": "phone"}})
    assert "calendars" not in plain.model_dump(mode="json")


@pytest.mark.parametrize(
    ("column", "fragment"),
    [
        ({"type": "category", "calendar": "jalali"}, "only a declared timestamp or date"),
        ({"type": "date", "calendar": "hebrew"}, "calendars.x"),
        ({"type": "date", "zone": "Asia/Tehran"}, "the long form is"),
    ],
)
def test_bad_calendars_are_refused(column: dict[str, str], fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        parse_spec({"dataset": "d", "identifiers": {"m": "phone"}, "columns": {"x": column}})
