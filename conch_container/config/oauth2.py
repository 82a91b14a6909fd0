"""``auth.keyboardInteractive.oauth2``: accepted and kept as data, not acted on yet."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from conch_container.config import tls
from conch_container.config.http import (
    HTTPClientConfig,
    HTTPServerConfig,
    cipher_list,
    curve_list,
    tls_version,
)
from conch_container.config.kinds import (
    Bool,
    Choice,
    Duration,
    ListOf,
    PemOrFile,
    Section,
    Str,
    min_duration,
)
from conch_container.config.schema import setting


def _strings() -> ListOf:
    return ListOf(Str())


@attrs.frozen
class GitHubConfig:
    """OAuth2 against GitHub (or GitHub Enterprise)."""

    url: str = setting("url", Str(), "https://github.com", doc="GitHub web URL.")
    apiurl: str = setting("apiurl", Str(), "https://api.github.com", doc="GitHub API URL.")
    cacert: str = setting("cacert", PemOrFile(), "", doc="CA certificates for GitHub.")
    cert: str = setting("cert", PemOrFile(), "", doc="Client certificate.")
    key: str = setting("key", PemOrFile(), "", doc="Client key.")
    tls_version: str = setting("tlsVersion", tls_version(), "1.3", doc="Minimum TLS version.")
    curves: tuple[str, ...] = setting("curves", curve_list(), tls.DEFAULT_CURVES, doc="TLS curves.")
    cipher: tuple[str, ...] = setting(
        "cipher", cipher_list(), tls.DEFAULT_CIPHERS, doc="TLS cipher suites."
    )
    enforce_username: bool = setting(
        "enforceUsername", Bool(), True, doc="Require the SSH username to be the GitHub login."
    )
    require_org_membership: str = setting(
        "requireOrgMembership", Str(), "", doc="Organisation the user must belong to."
    )
    require2_fa: bool = setting(
        "require2FA", Bool(), False, doc="Require two-factor authentication on the account."
    )
    extra_scopes: tuple[str, ...] = setting(
        "extraScopes", _strings(), (), doc="Scopes to request in addition."
    )
    enforce_scopes: bool = setting(
        "enforceScopes", Bool(), False, doc="Fail if the user does not grant every scope."
    )
    timeout: float = setting(
        "timeout", Duration(min_duration(0.1)), 10.0, doc="Time limit of one GitHub request."
    )


@attrs.frozen
class OIDCConfig(HTTPClientConfig):
    """OAuth2 against an OpenID Connect issuer (``url`` is the issuer's base URL)."""

    device_flow: bool = setting("deviceFlow", Bool(), False, doc="Use the device flow.")
    authorization_code_flow: bool = setting(
        "authorizationCodeFlow", Bool(), False, doc="Use the authorization-code flow."
    )
    username_field: str = setting(
        "usernameField", Str(), "sub", doc="Userinfo field holding the username."
    )
    redirect_uri: str = setting(
        "redirectURI", Str(), "", doc="Redirect URI for the authorization-code flow."
    )
    extra_scopes: tuple[str, ...] = setting(
        "extraScopes", _strings(), (), doc="Scopes to request in addition."
    )
    enforce_scopes: bool = setting(
        "enforceScopes", Bool(), False, doc="Fail if the user does not grant every scope."
    )


@attrs.frozen
class GenericOAuth2Config:
    """OAuth2 against any provider with an authorize and a token endpoint."""

    authorize_endpoint_url: str = setting(
        "authorizeEndpointURL", Str(), "", doc="Authorization endpoint URL."
    )
    token_endpoint: HTTPClientConfig = setting(
        "tokenEndpoint", Section(HTTPClientConfig), HTTPClientConfig(), doc="Token endpoint."
    )
    redirect_uri: str = setting("redirectURI", Str(), "", doc="Redirect URI.")


@attrs.frozen
class OAuth2RedirectConfig(HTTPServerConfig):
    """The HTTP server that receives the OAuth2 redirect."""

    webroot: str = setting(
        "webroot", Str(), "", doc="Directory with an `index.html` template for the code page."
    )


@attrs.frozen
class OAuth2Config:
    """Keyboard-interactive login through an OAuth2 provider."""

    client_id: str = setting("clientId", Str(), "", doc="OAuth2 client ID.")
    client_secret: str = setting("clientSecret", Str(), "", doc="OAuth2 client secret.")
    provider: str = setting(
        "provider", Choice("", "github", "oidc", "generic"), "", doc="The provider to use."
    )
    github: GitHubConfig = setting("github", Section(GitHubConfig), GitHubConfig(), doc="GitHub.")
    oidc: OIDCConfig = setting("oidc", Section(OIDCConfig), OIDCConfig(), doc="OIDC.")
    generic: GenericOAuth2Config = setting(
        "generic", Section(GenericOAuth2Config), GenericOAuth2Config(), doc="Generic OAuth2."
    )
    qr_code_clients: tuple[str, ...] = setting(
        "qrCodeClients", _strings(), (), doc="Client-version regexes that get a QR code."
    )
    device_flow_clients: tuple[str, ...] = setting(
        "deviceFlowClients", _strings(), (), doc="Client-version regexes that use the device flow."
    )
    auth_timeout: float = setting(
        "authTimeout", Duration(), 120.0, doc="Time the user has to complete the login."
    )
    redirect: OAuth2RedirectConfig = setting(
        "redirect",
        Section(OAuth2RedirectConfig),
        OAuth2RedirectConfig(),
        doc="Redirect HTTP server.",
    )
