"""Packaging: the agent SDK imports without server dependencies; types ship; the version is metadata."""

from __future__ import annotations

import subprocess
import sys

from importlib.metadata import version
from pathlib import Path

import remit

SERVER_ONLY = ["sqlalchemy", "alembic", "psycopg", "cedarpy", "joserfc", "cryptography", "litestar", "uvicorn", "typer"]

BLOCKER = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {SERVER_ONLY!r}:
            raise ImportError('server-only dependency imported: ' + name)
        return None
sys.meta_path.insert(0, Block())
import remit, remit.errors, remit.wire, remit.sdk
import pkgutil, importlib
for mod in pkgutil.walk_packages(remit.sdk.__path__, 'remit.sdk.'):
    importlib.import_module(mod.name)
for mod in pkgutil.walk_packages(remit.wire.__path__, 'remit.wire.'):
    importlib.import_module(mod.name)
try:
    remit.sdk.DpopKey.generate()
except ImportError as missing:
    assert "remit[dpop]" in str(missing), missing
else:
    raise AssertionError("DPoP worked without cryptography")
print('ok')
"""


def test_sdk_imports_without_server_dependencies() -> None:
    """Every module of remit.sdk and remit.wire imports while server-only libraries are unimportable.

    DPoP then says which extra to install (`remit[dpop]`, the cryptography package).
    """
    result = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_version_is_package_metadata() -> None:
    assert version("remit") == remit.__version__


def test_types_ship() -> None:
    assert (Path(remit.__file__).parent / "py.typed").exists()
