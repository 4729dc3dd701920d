"""Load the catalog TOML: the packaged default, or ``SUITE_CATALOG``."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from domain.catalog import Catalog, parse_catalog
from domain.errors import CatalogError

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.toml")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog; errors name the file, the key and the problem."""
    chosen = Path(path or os.environ.get("SUITE_CATALOG") or DEFAULT_CATALOG_PATH)
    source = str(chosen)
    try:
        with chosen.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise CatalogError(source, "(file)", "does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(source, "(syntax)", str(error)) from None
    return parse_catalog(document, source)


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return load_catalog(DEFAULT_CATALOG_PATH)
