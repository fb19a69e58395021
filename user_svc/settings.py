from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from common.settings import ServiceSettings


class UserSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/users", validation_alias=AliasChoices("USER_DATABASE_URL")
    )
    # The RS256 signing key: a PEM file, or the PEM itself (JWT_PRIVATE_KEY wins when both are set).
    jwt_private_key_file: Path | None = None
    jwt_private_key: SecretStr | None = None
    access_token_minutes: int = Field(15, gt=0)
    refresh_token_days: int = Field(7, gt=0)
    # The first admin, created or updated at start-up.
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    # Sign-in throttling: failed attempts per account, and all attempts per client address, per window.
    login_window_seconds: int = Field(300, gt=0)
    login_max_failures_per_account: int = Field(5, gt=0)
    login_max_attempts_per_client: int = Field(30, gt=0)

    def private_key_pem(self) -> bytes:
        if self.jwt_private_key is not None:
            return self.jwt_private_key.get_secret_value().encode()
        if self.jwt_private_key_file is not None:
            return self.jwt_private_key_file.read_bytes()
        raise RuntimeError("user_svc needs JWT_PRIVATE_KEY_FILE or JWT_PRIVATE_KEY (an RSA private key in PEM)")
