"""The package's version: pyproject.toml's `version` (the layer ships without pyproject.toml, so
it is written here too; tests/unit/test_version.py keeps the two equal). The OpenAPI document's
`info.version`, the CLI's `--version` and the console show it."""

__version__ = "0.1.0"
