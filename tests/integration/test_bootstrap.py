"""The composition root: first start creates key material privately; the sweeper follows a rotation."""

from __future__ import annotations

import stat

from pathlib import Path

from pydantic import SecretStr

from remit.adapters.keys import KeyRing, read_kek_file
from remit.bootstrap import build, upgrade_database
from remit.settings import Settings


def test_first_start_creates_private_key_material_and_the_sweeper_follows_rotation(tmp_path: Path) -> None:
    """KEK, audit HMAC key and key ring are created 0600; after `keys rotate` elsewhere the server signs with the new key."""
    settings = Settings(home=tmp_path, operator_token=SecretStr("remit_op_" + "x" * 32))
    upgrade_database(settings)
    remit = build(settings)
    try:
        for name in ("kek", "audit-hmac-key"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        before = remit.key_ring.active().kid

        other = KeyRing.open(tmp_path / "keys", read_kek_file(tmp_path / "kek"), now=remit.clock.now())
        rotated = other.rotate(remit.clock.now()).kid
        remit.sweep_once()

        assert rotated != before
        assert remit.key_ring.active().kid == rotated
        assert {k["kid"] for k in remit.signer.jwks()["keys"]} >= {before, rotated}
    finally:
        remit.close()
