"""Task credentials: issuance, verification and revocation."""
