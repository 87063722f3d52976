"""Each provider's proof of the secret: accepted when right, refused with a reason a user can act on."""

from __future__ import annotations

import pytest

from core.webhooks import Provider, SignatureError, verify_signature
from tests.unit.webhooks.support import body_of, hex_hmac, signed_headers

SECRET = "s3cr3t-webhook"
BODY = body_of("github/push.json")
SIGNATURE_HEADER = {
    Provider.GITHUB: "X-Hub-Signature-256",
    Provider.GITLAB: "X-Gitlab-Token",
    Provider.GITEA: "X-Gitea-Signature",
    Provider.BITBUCKET: "X-Hub-Signature",
}


@pytest.mark.parametrize("provider", list(Provider))
def test_a_delivery_signed_with_the_secret_is_accepted(provider: Provider) -> None:
    verify_signature(provider, signed_headers(provider, BODY, SECRET), BODY, SECRET)


@pytest.mark.parametrize("provider", list(Provider))
def test_header_names_match_in_any_case(provider: Provider) -> None:
    headers = {name.lower(): value for name, value in signed_headers(provider, BODY, SECRET).items()}
    verify_signature(provider, headers, BODY, SECRET)
    headers = {name.upper(): value for name, value in signed_headers(provider, BODY, SECRET).items()}
    verify_signature(provider, headers, BODY, SECRET)


@pytest.mark.parametrize("provider", list(Provider))
def test_another_secret_is_refused(provider: Provider) -> None:
    with pytest.raises(SignatureError, match=r"^signature does not match"):
        verify_signature(provider, signed_headers(provider, BODY, "another secret"), BODY, SECRET)


@pytest.mark.parametrize("provider", [Provider.GITHUB, Provider.GITEA, Provider.BITBUCKET])
def test_a_tampered_body_is_refused(provider: Provider) -> None:
    tampered = BODY.replace(b"refs/heads/main", b"refs/heads/evil")
    assert tampered != BODY
    with pytest.raises(SignatureError, match=r"^signature does not match"):
        verify_signature(provider, signed_headers(provider, BODY, SECRET), tampered, SECRET)


def test_gitlab_does_not_sign_bodies_so_only_the_token_counts() -> None:
    verify_signature(Provider.GITLAB, {"X-Gitlab-Token": SECRET}, b"anything", SECRET)


@pytest.mark.parametrize("provider", list(Provider))
def test_a_missing_header_is_named(provider: Provider) -> None:
    with pytest.raises(SignatureError, match=f"^missing {SIGNATURE_HEADER[provider]} header"):
        verify_signature(provider, {"Content-Type": "application/json"}, BODY, SECRET)


@pytest.mark.parametrize("provider", list(Provider))
def test_an_empty_header_says_to_set_the_secret(provider: Provider) -> None:
    """Gitea sends X-Gitea-Signature empty when its webhook has no secret."""
    name = SIGNATURE_HEADER[provider]
    with pytest.raises(SignatureError, match=f"^(missing {name} header|{name} header is empty): set the"):
        verify_signature(provider, {name: ""}, BODY, SECRET)


@pytest.mark.parametrize(
    ("provider", "value", "expected"),
    [
        pytest.param(Provider.GITHUB, "sha1=" + "a" * 40, "sha256=<64 hex digits>", id="github-sha1"),
        pytest.param(Provider.GITHUB, "sha256=xyz", "sha256=<64 hex digits>", id="github-not-hex"),
        pytest.param(Provider.GITHUB, "a" * 64, "sha256=<64 hex digits>", id="github-no-prefix"),
        pytest.param(Provider.GITHUB, "sha256=" + "a" * 63, "sha256=<64 hex digits>", id="github-short"),
        pytest.param(Provider.BITBUCKET, "sha1=" + "a" * 40, "sha256=<64 hex digits>", id="bitbucket-sha1"),
        pytest.param(Provider.GITEA, "sha256=" + "a" * 64, "<64 hex digits>", id="gitea-prefixed"),
        pytest.param(Provider.GITEA, "ä" * 64, "<64 hex digits>", id="gitea-non-ascii"),
    ],
)
def test_a_malformed_header_says_what_is_expected(provider: Provider, value: str, expected: str) -> None:
    name = SIGNATURE_HEADER[provider]
    with pytest.raises(SignatureError) as caught:
        verify_signature(provider, {name: value}, BODY, SECRET)
    assert caught.value.reason == f"malformed {name} header: expected {expected}"


def test_uppercase_hex_is_the_same_signature() -> None:
    headers = {"X-Hub-Signature-256": f"sha256={hex_hmac(SECRET, BODY).upper()}"}
    verify_signature(Provider.GITHUB, headers, BODY, SECRET)


def test_forgejo_signature_header_is_accepted() -> None:
    verify_signature(Provider.GITEA, {"X-Forgejo-Signature": hex_hmac(SECRET, BODY)}, BODY, SECRET)


def test_gitea_checks_its_own_header_before_forgejos() -> None:
    headers = {"X-Gitea-Signature": "0" * 64, "X-Forgejo-Signature": hex_hmac(SECRET, BODY)}
    with pytest.raises(SignatureError, match="X-Gitea-Signature was not made with this secret"):
        verify_signature(Provider.GITEA, headers, BODY, SECRET)


@pytest.mark.parametrize("provider", [Provider.GITHUB, Provider.GITEA])
def test_the_legacy_sha1_header_alone_is_refused(provider: Provider) -> None:
    with pytest.raises(SignatureError, match=r"^missing"):
        verify_signature(provider, {"X-Hub-Signature": "sha1=" + "a" * 40}, BODY, SECRET)


@pytest.mark.parametrize("provider", list(Provider))
def test_an_empty_secret_is_a_configuration_error(provider: Provider) -> None:
    with pytest.raises(ValueError, match="empty webhook secret"):
        verify_signature(provider, signed_headers(provider, BODY, ""), BODY, "")


def test_githubs_published_test_vector() -> None:
    """github/docs validating-webhook-deliveries.md."""
    headers = {
        "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    }
    verify_signature(Provider.GITHUB, headers, b"Hello, World!", "It's a Secret to Everybody")


def test_bitbuckets_real_signed_delivery() -> None:
    """A real Bitbucket Cloud delivery and its secret (jenkinsci/bitbucket-branch-source-plugin's tests)."""
    headers = {
        "X-Event-Key": "repo:push",
        "X-Hub-Signature": "sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035",
    }
    body = body_of("bitbucket/repo_push.signed.raw.json")
    verify_signature(Provider.BITBUCKET, headers, body, "Gkvl$k$wyNpQAF42")
    with pytest.raises(SignatureError, match=r"^signature does not match"):
        verify_signature(Provider.BITBUCKET, headers, body + b"\n", "Gkvl$k$wyNpQAF42")
