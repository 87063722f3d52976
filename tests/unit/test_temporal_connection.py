"""How Dockyard connects to Temporal: TLS, mutual TLS and an API key come from the settings."""

from __future__ import annotations

from pathlib import Path

from temporalio.service import TLSConfig

from core.codec import EncryptionCodec, data_converter
from core.settings import load_settings
from core.temporal import tls_config


def test_the_dev_server_needs_no_tls_and_a_cluster_gets_its_ca_and_client_certificate(tmp_path: Path) -> None:
    assert tls_config(load_settings(state_dir=tmp_path)) is False
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text(f"-----{name}-----")
    settings = load_settings(
        state_dir=tmp_path,
        temporal_tls=True,
        temporal_tls_ca_file=tmp_path / "ca.pem",
        temporal_tls_cert_file=tmp_path / "client.pem",
        temporal_tls_key_file=tmp_path / "client.key",
    )
    assert tls_config(settings) == TLSConfig(
        server_root_ca_cert=b"-----ca.pem-----",
        client_cert=b"-----client.pem-----",
        client_private_key=b"-----client.key-----",
    )
    only_tls = tls_config(load_settings(state_dir=tmp_path, temporal_tls=True))
    assert only_tls == TLSConfig()  # the system's CAs, no client certificate


def test_payloads_are_encrypted_once_a_payload_key_is_set(tmp_path: Path) -> None:
    assert data_converter(load_settings(state_dir=tmp_path)).payload_codec is None
    converter = data_converter(load_settings(state_dir=tmp_path, payload_key="k" * 44))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.failure_converter._encode_common_attributes  # type: ignore[attr-defined]
