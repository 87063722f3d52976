"""Image references are parsed the way Docker parses them, and pinned by digest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.images import DOCKER_HUB, ImageReference, InvalidImageReference, parse_image_reference

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("nginx", ImageReference(DOCKER_HUB, "library/nginx", "latest"), id="bare-name"),
        pytest.param("nginx:1.25", ImageReference(DOCKER_HUB, "library/nginx", "1.25"), id="hub-tag"),
        pytest.param("library/nginx", ImageReference(DOCKER_HUB, "library/nginx", "latest"), id="library"),
        pytest.param("acme/web", ImageReference(DOCKER_HUB, "acme/web", "latest"), id="hub-user"),
        pytest.param(
            "docker.io/nginx", ImageReference(DOCKER_HUB, "library/nginx", "latest"), id="hub-explicit"
        ),
        pytest.param(
            "docker.io/acme/web:2", ImageReference(DOCKER_HUB, "acme/web", "2"), id="hub-explicit-user"
        ),
        pytest.param("localhost/web", ImageReference("localhost", "web", "latest"), id="localhost"),
        pytest.param(
            "localhost:5000/web:1", ImageReference("localhost:5000", "web", "1"), id="localhost-port"
        ),
        pytest.param(
            "127.0.0.1:5000/apps/web:v1.2.3",
            ImageReference("127.0.0.1:5000", "apps/web", "v1.2.3"),
            id="ip-port-nested",
        ),
        pytest.param(
            "ghcr.io/acme/team/web:main_2024-01",
            ImageReference("ghcr.io", "acme/team/web", "main_2024-01"),
            id="domain-deep-path",
        ),
        pytest.param(
            "registry.example.com:443/web",
            ImageReference("registry.example.com:443", "web", "latest"),
            id="port",
        ),
        pytest.param(
            "a.b-c/d__e.f-g", ImageReference("a.b-c", "d__e.f-g", "latest"), id="component-separators"
        ),
        pytest.param(
            f"nginx@{DIGEST}", ImageReference(DOCKER_HUB, "library/nginx", None, DIGEST), id="digest-only"
        ),
        pytest.param(
            f"127.0.0.1:5000/web:1@{DIGEST}",
            ImageReference("127.0.0.1:5000", "web", "1", DIGEST),
            id="tag-and-digest",
        ),
        pytest.param(
            "web:Latest_Build.1", ImageReference(DOCKER_HUB, "library/web", "Latest_Build.1"), id="tag-case"
        ),
        pytest.param(
            "localhost:5000", ImageReference(DOCKER_HUB, "library/localhost", "5000"), id="name-colon-is-tag"
        ),
    ],
)
def test_parses(text: str, expected: ImageReference) -> None:
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "empty or contains spaces", id="empty"),
        pytest.param("my app", "empty or contains spaces", id="inner-space"),
        pytest.param(" nginx", "empty or contains spaces", id="leading-space"),
        pytest.param("nginx\n", "empty or contains spaces", id="trailing-newline"),
        pytest.param("Nginx", "repository must be lowercase", id="uppercase-name"),
        pytest.param("ghcr.io/Acme/web", "repository must be lowercase", id="uppercase-path"),
        pytest.param("a//b", "repository must be lowercase", id="empty-component"),
        pytest.param("web-", "repository must be lowercase", id="trailing-separator"),
        pytest.param("a___b", "repository must be lowercase", id="triple-underscore"),
        pytest.param("ghcr.io/", "repository must be lowercase", id="registry-only"),
        pytest.param(f"@{DIGEST}", "repository must be lowercase", id="digest-without-name"),
        pytest.param("nginx:", "bad tag ''", id="empty-tag"),
        pytest.param("nginx:-rc", "bad tag '-rc'", id="tag-starts-with-dash"),
        pytest.param("nginx:.x", "bad tag '.x'", id="tag-starts-with-dot"),
        pytest.param("nginx:" + "x" * 129, "bad tag", id="tag-too-long"),
        pytest.param("nginx:v1+build", "bad tag 'v1+build'", id="tag-plus"),
        pytest.param("nginx:t\u00e6g", "bad tag", id="tag-non-ascii"),
        pytest.param("nginx@sha256:abc", "digest must be sha256:<64 hex>", id="short-digest"),
        pytest.param("nginx@sha256:" + "A" * 64, "digest must be sha256:<64 hex>", id="uppercase-digest"),
        pytest.param("nginx@md5:" + "a" * 32, "digest must be sha256:<64 hex>", id="other-algorithm"),
        pytest.param("nginx@", "digest must be sha256:<64 hex>", id="empty-digest"),
    ],
)
def test_rejects_naming_the_reference(text: str, reason: str) -> None:
    with pytest.raises(InvalidImageReference) as caught:
        parse_image_reference(text)
    message = str(caught.value)
    assert message.startswith(f"invalid image reference {text!r}: ")
    assert reason in message


def test_invalid_reference_is_a_value_error() -> None:
    # pydantic turns ValueErrors raised by validators into 422s naming the field.
    assert issubclass(InvalidImageReference, ValueError)


@pytest.mark.parametrize(
    ("text", "reference", "pinned"),
    [
        pytest.param("nginx", "latest", f"docker.io/library/nginx@{OTHER_DIGEST}", id="hub"),
        pytest.param("127.0.0.1:5000/apps/web:1", "1", f"127.0.0.1:5000/apps/web@{OTHER_DIGEST}", id="tag"),
        pytest.param(
            f"localhost:5000/web@{DIGEST}", DIGEST, f"localhost:5000/web@{OTHER_DIGEST}", id="re-pin"
        ),
        pytest.param(
            f"localhost:5000/web:1@{DIGEST}", DIGEST, f"localhost:5000/web@{OTHER_DIGEST}", id="drops-tag"
        ),
    ],
)
def test_reference_and_pinned(text: str, reference: str, pinned: str) -> None:
    ref = parse_image_reference(text)
    assert ref.reference == reference
    assert ref.pinned(OTHER_DIGEST) == pinned


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        pytest.param(ImageReference("r:5000", "web"), "r:5000/web", id="bare"),
        pytest.param(ImageReference("r:5000", "web", "1"), "r:5000/web:1", id="tag"),
        pytest.param(ImageReference("r:5000", "web", None, DIGEST), f"r:5000/web@{DIGEST}", id="digest"),
        pytest.param(ImageReference("r:5000", "web", "1", DIGEST), f"r:5000/web:1@{DIGEST}", id="both"),
    ],
)
def test_str(ref: ImageReference, text: str) -> None:
    assert str(ref) == text


def test_reference_defaults_to_latest() -> None:
    assert ImageReference("r:5000", "web").reference == "latest"


_component = st.from_regex(r"\A[a-z0-9]{1,8}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,8}){0,2}\Z")
_registry = st.one_of(
    st.just("localhost"),
    st.from_regex(r"\A[a-z0-9]{1,8}\.[a-z]{2,4}(?::[0-9]{1,5})?\Z"),
    st.from_regex(r"\Alocalhost:[0-9]{1,5}\Z"),
)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda hexes: f"sha256:{hexes}")


@st.composite
def references(draw: st.DrawFn) -> str:
    registry = draw(st.none() | _registry)
    path = draw(st.lists(_component, min_size=1, max_size=3))
    text = "/".join(([registry] if registry else []) + path)
    if tag := draw(st.none() | _tag):
        text += f":{tag}"
    if digest := draw(st.none() | _digest):
        text += f"@{digest}"
    return text


@given(references())
def test_round_trip(text: str) -> None:
    """The canonical form parses back to the same reference."""
    ref = parse_image_reference(text)
    assert parse_image_reference(str(ref)) == ref
    assert ref.tag is not None or ref.digest is not None


@given(references(), _digest)
def test_pinned_is_immutable_and_keeps_the_repository(text: str, digest: str) -> None:
    ref = parse_image_reference(text)
    pinned = parse_image_reference(ref.pinned(digest))
    assert (pinned.registry, pinned.repository, pinned.tag, pinned.digest) == (
        ref.registry,
        ref.repository,
        None,
        digest,
    )
    assert pinned.reference == digest
