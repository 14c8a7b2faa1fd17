"""The masker every log line, run record, page and event goes through: the usual shapes."""

from __future__ import annotations

import pytest

from financial.pkg.observability.masking import is_secret_key, mask_secrets

PASSWORD = "s3cr3t-pw"
TOKEN = "abc123tok"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"could not reach postgresql://app:{PASSWORD}@db.internal:5432/x (token={TOKEN})",
         "could not reach postgresql://app:***@db.internal:5432/x (token=***"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
        (f"authorization=Basic {TOKEN}", "authorization=Basic ***"),
        (f"{{'Authorization': 'Bearer {TOKEN}'}}", "{'Authorization': '***'}"),
        (f"sent header bearer {TOKEN} to the API", "sent header bearer *** to the API"),
        (f"secret={PASSWORD}", "secret=***"),
        (f"client_secret={PASSWORD}&grant=x", "client_secret=***&grant=x"),
        (f"AWS_SECRET_ACCESS_KEY={PASSWORD}", "AWS_SECRET_ACCESS_KEY=***"),
        (f"api_key={TOKEN}", "api_key=***"),
        (f"X-Api-Key: {TOKEN}", "X-Api-Key: ***"),
        (f"access_token={TOKEN}", "access_token=***"),
        (f'{{"refresh_token": "{TOKEN}"}}', '{"refresh_token": "***"}'),
        (f"host=db user=u password={PASSWORD} dbname=x", "host=db user=u password=*** dbname=x"),
        (f"host=db sslpassword='{PASSWORD} x' dbname=x", "host=db sslpassword='***' dbname=x"),
        (f"passphrase: {PASSWORD}", "passphrase: ***"),
        (f"amqps://u:{PASSWORD}@mq:5671/v", "amqps://u:***@mq:5671/v"),
    ],
)  # fmt: skip
def test_the_usual_shapes_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert PASSWORD not in mask_secrets(text)
    assert TOKEN not in mask_secrets(text)


def test_a_bare_bearer_masks_the_word_after_it() -> None:
    # Masking a little too much is the safe way to be wrong.
    assert mask_secrets("the bearer of bad news") == "the bearer *** bad news"


@pytest.mark.parametrize(
    "text",
    [
        "job_failed",
        "tokens left: 5",
        "secrets_dirs: /run/secrets",
        'password authentication failed for user "app"',
        "Authorization required",
        "cannot connect to PostgreSQL at db:5432/x",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("api_token", True),
        ("aws_secret_access_key", True),
        ("private_key", True),
        ("authorization", True),
        ("credentials", True),
        ("error", False),
        ("job", False),
        ("tokens_left", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret
