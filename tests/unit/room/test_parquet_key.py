"""The room's Parquet encryption: Arrow and Spark read what the other wrote, nobody else does.

Arrow writes the tables a Spark match exports from the warehouse; Spark writes
the analysis tables; each side must read the other's files with the room's
key (the key wrapping of ``RoomKms`` must equal parquet-mr's
``LocalWrapKmsClient``), and a reader without the key, with another room's
key, or with a changed wrapped key must fail.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import SparkSession

from cleanroom.errors import UserError
from cleanroom.room.backends.kms import ParquetKey, RoomKms
from cleanroom.room.backends.spark import spark_session

pytestmark = pytest.mark.spark

KEY = ParquetKey.from_secret(b"r" * 32)
OTHER = ParquetKey.from_secret(b"o" * 32)
ROWS = pa.table(
    {
        "person": pa.array([3, 1, 2], pa.int64()),
        "token": pa.array([b"\x00" * 32, b"\x01" * 32, b"\xff" * 32], pa.binary()),
        "city": ["Tehran", "Qom", None],
        "at": pa.array([dt.datetime(2026, 1, 2, 3, 4, 5, 6)] * 3, pa.timestamp("us")),
        "amount": [1.5, None, -2.0],
    }
)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    return spark_session(
        "local[1]", tmp_path_factory.mktemp("spark-work"), {"spark.sql.shuffle.partitions": "1"}
    )


def arrow_write(path: Path, key: ParquetKey = KEY) -> Path:
    path.mkdir()
    pq.write_table(ROWS, path / "part-0.parquet", encryption_properties=key.encryption_properties())
    return path


def test_spark_reads_what_arrow_wrote(spark: SparkSession, tmp_path: Path) -> None:
    path = arrow_write(tmp_path / "t")
    rows = spark.read.options(**KEY.read_options()).parquet(str(path)).collect()
    got = sorted((r.person, bytes(r.token), r.city, r["at"], r.amount) for r in rows)
    assert got == sorted(zip(*ROWS.to_pydict().values(), strict=True))


def test_arrow_reads_what_spark_wrote(spark: SparkSession, tmp_path: Path) -> None:
    arrow_write(tmp_path / "src")
    frame = spark.read.options(**KEY.read_options()).parquet(str(tmp_path / "src"))
    frame.write.options(**KEY.write_options()).parquet(str(tmp_path / "out"))
    back = pq.read_table(tmp_path / "out", decryption_properties=KEY.decryption_properties())
    assert back.sort_by("person").to_pydict() == ROWS.sort_by("person").to_pydict()


def test_files_hold_neither_values_nor_column_names(tmp_path: Path) -> None:
    data = (arrow_write(tmp_path / "t") / "part-0.parquet").read_bytes()
    assert data[-4:] == b"PARE"  # encrypted footer
    for plain in (b"Tehran", b"person", b"city", b"\xff" * 32):
        assert plain not in data


def test_without_the_room_key_nothing_reads(spark: SparkSession, tmp_path: Path) -> None:
    path = arrow_write(tmp_path / "t")
    with pytest.raises(Exception):  # noqa: B017 - Arrow: no decryption properties
        pq.read_table(path)
    with pytest.raises(UserError, match=r"did not unwrap|holds no Parquet key"):
        pq.read_table(path, decryption_properties=OTHER.decryption_properties())
    with pytest.raises(Exception, match=r"(?i)key|crypto"):
        spark.read.options(**OTHER.read_options()).parquet(str(path)).collect()


def test_a_changed_wrapped_key_does_not_unwrap() -> None:
    kms = RoomKms(KEY)
    wrapped = json.loads(kms.wrap_key(b"k" * 16, KEY.key_id))
    assert kms.unwrap_key(json.dumps(wrapped), KEY.key_id) == b"k" * 16
    blob = bytearray(base64.b64decode(wrapped["encryptedKey"]))
    blob[-1] ^= 1
    wrapped["encryptedKey"] = base64.b64encode(bytes(blob)).decode()
    with pytest.raises(UserError, match="did not unwrap"):
        kms.unwrap_key(json.dumps(wrapped), KEY.key_id)
    with pytest.raises(UserError, match="holds no Parquet key"):
        kms.wrap_key(b"k" * 16, OTHER.key_id)
    assert "key=" not in repr(KEY) and KEY.key.hex() not in repr(KEY)
