"""Table definitions for a compacted lake (``shoebox ddl``): the SQL that
makes DuckDB, Athena, Trino or Spark read ``shoebox compact``'s output as a
table partitioned by ``dt``.

The columns are the lake's (:func:`shoebox.lake.schema`; a test checks
that the two agree); ``dt`` is the partition column, in the paths. Athena
gets partition projection on ``dt`` (a date from the lake's first day to
now), so no ``MSCK REPAIR TABLE`` is ever needed; Trino and Spark, which
have no such projection for Hive tables, get the statement that registers
the partitions, to run again after compactions that add days. Records
without a readable timestamp (``dt=__HIVE_DEFAULT_PARTITION__``) are read
by DuckDB, Trino and Spark (with a null ``dt``), not by Athena's
projection of dates.
"""

from __future__ import annotations

import datetime
import os
import re

from . import s3
from .errors import InvalidOption

#: The engines ``shoebox ddl`` writes for.
ENGINES = ("duckdb", "athena", "trino", "spark")

#: The lake's columns in file order, each with its kind.
COLUMNS = (("metadata", "map"), ("level", "string"), ("logger", "string"),
           ("timestamp", "string"), ("host", "string"), ("pid", "string"),
           ("payload", "string"), ("source", "string"), ("offset", "bigint"),
           ("time", "timestamp"))

_TYPES = {
    "athena": {"map": "map<string,string>", "string": "string", "bigint": "bigint",
               "timestamp": "timestamp"},
    "trino": {"map": "map(varchar, varchar)", "string": "varchar", "bigint": "bigint",
              "timestamp": "timestamp(3)"},
    "spark": {"map": "MAP<STRING, STRING>", "string": "STRING", "bigint": "BIGINT",
              "timestamp": "TIMESTAMP"},
}
_QUOTES = {"athena": "`{}`", "trino": '"{}"', "spark": "`{}`"}
_TABLE_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*){0,2}")
_DAY_FOLDER = re.compile(r"dt=(\d{4}-\d\d-\d\d)/?$")


def table_ddl(lake: str, *, engine: str, table: str, first_day: str | None = None) -> str:
    """The SQL defining ``table`` over the lake at ``lake`` (a directory or
    ``s3://`` prefix) for ``engine`` (one of :data:`ENGINES`). ``first_day``
    (``YYYY-MM-DD``) starts Athena's projection range (default: today).
    Raises :class:`~shoebox.errors.InvalidOption` for an unknown engine, a
    table name that is not ``[catalog.][schema.]name``, and an Athena table
    over a lake that is not on S3."""
    if engine not in ENGINES:
        raise InvalidOption("engine", f"must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not _TABLE_NAME.fullmatch(table):
        raise InvalidOption("table", f"must be a name ([catalog.][schema.]name), not {table!r}")
    on_s3 = s3.is_s3_url(lake)
    root = lake.rstrip("/") if on_s3 else os.path.abspath(lake)
    if engine == "duckdb":
        return (f"CREATE OR REPLACE VIEW {table} AS\n"
                f"SELECT * FROM read_parquet('{_quote(root)}/dt=*/*.parquet', "
                "hive_partitioning = true);\n")
    columns = ",\n".join(f"  {_QUOTES[engine].format(name)} {_TYPES[engine][kind]}"
                         for name, kind in COLUMNS)
    if engine == "athena":
        if not on_s3:
            raise InvalidOption("lake", f"Athena reads S3 only, not {lake!r}")
        start = first_day or datetime.date.today().isoformat()
        return (f"CREATE EXTERNAL TABLE {table} (\n{columns}\n)\n"
                "PARTITIONED BY (`dt` string)\n"
                "STORED AS PARQUET\n"
                f"LOCATION '{_quote(root)}/'\n"
                "TBLPROPERTIES (\n"
                "  'projection.enabled' = 'true',\n"
                "  'projection.dt.type' = 'date',\n"
                "  'projection.dt.format' = 'yyyy-MM-dd',\n"
                f"  'projection.dt.range' = '{start},NOW',\n"
                "  'projection.dt.interval' = '1',\n"
                "  'projection.dt.interval.unit' = 'DAYS',\n"
                f"  'storage.location.template' = '{_quote(root)}/dt=${{dt}}/'\n"
                ");\n")
    location = root if on_s3 else f"file://{root}"
    if engine == "trino":
        parts = ["hive", "default", *table.split(".")][-3:]  # catalog, schema, name
        catalog, schema, name = parts
        return (f"CREATE TABLE {table} (\n{columns},\n  \"dt\" varchar\n)\n"
                f"WITH (external_location = '{_quote(location)}/', format = 'PARQUET', "
                "partitioned_by = ARRAY['dt']);\n"
                "-- registers the days there are; again after compactions that add days\n"
                f"CALL {catalog}.system.sync_partition_metadata('{schema}', '{name}', 'ADD');\n")
    if on_s3:
        location = "s3a://" + location[len("s3://"):]  # Hadoop's S3 file system
    return (f"CREATE TABLE {table} (\n{columns},\n  `dt` STRING\n)\n"
            "USING parquet\n"
            "PARTITIONED BY (dt)\n"
            f"LOCATION '{_quote(location)}/';\n"
            "-- registers the days there are; again after compactions that add days\n"
            f"MSCK REPAIR TABLE {table};\n")


def first_day(lake: str, endpoint_url: str | None = None) -> str | None:
    """The lake's first ``dt=`` day (``YYYY-MM-DD``), found by listing one
    level of it; ``None`` when it has none."""
    if s3.is_s3_url(lake):
        bucket, prefix = s3.parse_s3_url(lake)
        prefix = prefix.strip("/")
        folders = [name[len(prefix) + 1 if prefix else 0:] for name, _size, folder in
                   s3.list_level(s3.client(endpoint_url), bucket,
                                 prefix + "/" if prefix else "") if folder]
    else:
        folders = os.listdir(lake) if os.path.isdir(lake) else []
    days = sorted(match.group(1) for match in map(_DAY_FOLDER.match, folders) if match)
    return days[0] if days else None


def _quote(text: str) -> str:
    """``text`` inside a SQL string literal."""
    return text.replace("'", "''")


__all__ = ["COLUMNS", "ENGINES", "first_day", "table_ddl"]
