"""Encryption of the agents' model keys at rest (Fernet: AES-128-CBC with an HMAC).

The key is ANVYL_SECRET_KEY when set (a Fernet key, shared by every replica), else one generated
once into the data directory, readable by its owner alone. Decrypted keys live in the orchestrator's
memory only, for the model clients.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """The secret key is unusable, or a stored secret was encrypted with another key."""


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once do not overwrite each other's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(Fernet.generate_key())
    return path.read_bytes().strip()


class SecretBox:
    def __init__(self, key: str | None, data_dir: Path) -> None:
        raw = key.encode() if key else _key_file(data_dir)
        try:
            self._fernet = Fernet(raw)
        except ValueError as exc:
            where = "ANVYL_SECRET_KEY" if key else str(data_dir / KEY_FILE)
            raise SecretKeyError(
                f"{where} is not a Fernet key (32 url-safe base64-encoded bytes); generate one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from exc

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored model key cannot be decrypted: ANVYL_SECRET_KEY (or the data directory's "
                "secret.key) is not the key it was stored with; set the key back, or give the agent "
                "its key again (PATCH /agents/NAME with api_key)"
            ) from None
