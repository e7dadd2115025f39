"""Where a tracking store is: its URI resolved, a sqlite store's file and artifact folder, and the check that a file is
one (no MLflow import: `emodistill ui` supervises its server with these alone)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from emodistill.errors import ConfigError, EmodistillError, one_line

SQLITE_PREFIX = "sqlite:///"
DEFAULT_DB = "mlruns.db"
ARTIFACTS_DIR = "mlartifacts"
# What MLflow can track in: a folder, a database (SQLAlchemy's schemes) or a server.
DATABASE_SCHEMES = frozenset({"postgresql", "mysql", "mssql"})
# SQLAlchemy's driver name -> the package that provides it (`postgresql+psycopg2://` names its driver).
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
                   "mysqldb": "mysqlclient", "pymysql": "PyMySQL", "mysqlconnector": "mysql-connector-python",
                   "pyodbc": "pyodbc", "pymssql": "pymssql"}
TRACKING_SCHEMES = frozenset({"", "file", "sqlite", "http", "https", "databricks"}) | DATABASE_SCHEMES
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else `sqlite:///<cwd>/mlruns.db`; sqlite paths made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or SQLITE_PREFIX + DEFAULT_DB
    scheme = urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg2: SQLAlchemy's dialect+driver
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(f"tracking URI {uri!r}: unknown scheme {scheme!r}, expected sqlite:///path.db, "
                          "http(s)://server or a database URL (postgresql, mysql, mssql): check --tracking-uri and "
                          "$MLFLOW_TRACKING_URI")
    if uri.startswith("sqlite:"):
        # Absolute, so that Ray trials (which run in their own working directory) reach the same file.
        return SQLITE_PREFIX + str(sqlite_path(uri).resolve())
    if scheme in DATABASE_SCHEMES:
        check_database_driver(uri)
    return uri


def check_database_driver(uri: str) -> None:
    """Refuse a database URL whose SQLAlchemy driver is not installed, naming the package to install."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"tracking URI: not a database URL ({one_line(exc)})") from None
    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError as exc:
        raise ConfigError(f"tracking URI {shown!r}: SQLAlchemy has no dialect {url.drivername!r} "
                          f"({one_line(exc)})") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(f"tracking URI {shown!r}: cannot load its database driver ({one_line(exc)}); install "
                          f"{DRIVER_PACKAGES.get(dialect.driver, 'its driver')}") from None


def sqlite_path(uri: str) -> Path:
    """The database file of a `sqlite:///...` URI (relative to the working directory unless absolute)."""
    if not uri.startswith(SQLITE_PREFIX) or len(uri) == len(SQLITE_PREFIX):
        raise ConfigError(f"tracking URI {uri!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return Path(uri[len(SQLITE_PREFIX):])


def is_local_uri(uri: str) -> bool:
    """True for stores on this machine's disk (sqlite, file, plain paths); False for servers."""
    return urlparse(uri).scheme in ("sqlite", "file", "")


def artifact_root_for(uri: str) -> Path | None:
    """`mlartifacts/` beside a sqlite store's file; None for other stores (they keep their own default)."""
    uri = resolve_tracking_uri(uri)
    return sqlite_path(uri).parent / ARTIFACTS_DIR if uri.startswith("sqlite:") else None


def check_existing_store(uri: str | None = None, hint: str = "check --tracking-uri or $MLFLOW_TRACKING_URI") -> str:
    """The resolved URI; for sqlite, once its file is checked, read-only, to be an SQLite database with MLflow's tables.

    MLflow writes its whole schema into any sqlite file it opens (a mistyped path, an empty or foreign file), so
    commands that only read check the file before MLflow touches it.
    """
    uri = resolve_tracking_uri(uri)
    if not uri.startswith("sqlite:"):
        return uri
    path = sqlite_path(uri)

    def refuse(problem: str) -> NoReturn:
        raise EmodistillError(f"tracking store {path} {problem}: expected an MLflow sqlite store ({hint})")

    if not path.is_file():
        refuse("does not exist")
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        refuse("is empty (0 bytes)" if not header else "is not an SQLite database")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        refuse(f"is not a readable SQLite database ({exc})")
    missing = sorted(MLFLOW_TABLES - tables)
    if missing:
        refuse(f"holds no MLflow schema (no table {', '.join(missing)})")
    return uri
