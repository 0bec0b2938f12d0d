"""Server-side OAuth 1.0a HMAC-SHA1 verification built on oauthlib's signature code.

The fake X recomputes every signature so a bot that signs the wrong URL, query or
secret fails here exactly as it would against the real API.
"""

from __future__ import annotations

from dataclasses import dataclass

from oauthlib.common import safe_string_equals
from oauthlib.oauth1 import Client
from oauthlib.oauth1.rfc5849 import signature

_REQUIRED = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
)


@dataclass(frozen=True)
class OAuth1Credentials:
    """The four user-context secrets an X app signs with."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


def verify(
    credentials: OAuth1Credentials,
    method: str,
    url: str,
    raw_query: str,
    authorization: str | None,
    form_body: str | None = None,
) -> bool:
    """True if `authorization` validly signs this request with `credentials` (HMAC-SHA1).

    `url` is the URL as received (scheme, host, port, path); `raw_query` its still
    encoded query; `form_body` only for form-encoded bodies (JSON bodies are unsigned).
    """
    if not authorization:
        return False
    try:
        params = signature.collect_parameters(
            uri_query=raw_query,
            body=form_body,
            headers={"Authorization": authorization},
            exclude_oauth_signature=False,
        )
    except ValueError:
        return False
    oauth = {key: value for key, value in params if key.startswith("oauth_")}
    if any(key not in oauth for key in (*_REQUIRED, "oauth_signature")):
        return False
    if (
        oauth["oauth_consumer_key"] != credentials.consumer_key
        or oauth["oauth_token"] != credentials.access_token
        or oauth["oauth_signature_method"] != "HMAC-SHA1"
    ):
        return False
    base_string = signature.signature_base_string(
        method.upper(),
        signature.base_string_uri(url),
        signature.normalize_parameters([(k, v) for k, v in params if k != "oauth_signature"]),
    )
    signer = Client(
        credentials.consumer_key,
        client_secret=credentials.consumer_secret,
        resource_owner_secret=credentials.access_token_secret,
    )
    expected = signature.sign_hmac_sha1_with_client(base_string, signer)
    return bool(safe_string_equals(expected, oauth["oauth_signature"]))
