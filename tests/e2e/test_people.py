"""People on the platform as `dockyard up` runs it: the first admin of a new installation changes the
one-time password, `dockyard login` makes the CLI act as them, `dockyard logout` revokes its token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from tests.support.platform import Platform, run_dockyard

NEW_PASSWORD = "a long password for the admin"


def test_the_first_admin_changes_the_one_time_password_then_the_cli_logs_in_and_out(
    platform: Platform, tmp_path: Path
) -> None:
    password_file = platform.state_dir / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    one_time = password_file.read_text().strip()
    url = str(platform.api.base_url).rstrip("/")

    with httpx.Client(base_url=url, timeout=30) as browser:
        answer = browser.post("/v1/auth/login", json={"email": "admin@localhost", "password": one_time})
        assert answer.status_code == 200, answer.text
        assert answer.json()["password_change_required"] is True
        csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}
        changed = browser.post(
            "/v1/auth/password",
            json={"current_password": one_time, "new_password": NEW_PASSWORD},
            headers=csrf,
        )
        assert changed.status_code == 204, changed.text

    config = tmp_path / "config"
    env = {**platform.env, "XDG_CONFIG_HOME": str(config), "DOCKYARD_API_TOKEN": "not-the-token"}
    refused = run_dockyard(
        env, "login", "--email", "admin@localhost", "--password-stdin", input="wrong one\n"
    )
    assert refused.returncode == 1 and "wrong email or password" in refused.stderr

    logged_in = run_dockyard(
        env, "login", "--email", "admin@localhost", "--password-stdin", input=f"{NEW_PASSWORD}\n"
    )
    assert logged_in.returncode == 0, logged_in.stderr
    credentials = config / "dockyard" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    token = json.loads(credentials.read_text())[url]
    assert token.startswith("dyp_")

    # The CLI acts as the admin now, although DOCKYARD_API_TOKEN is wrong.
    whoami = run_dockyard(env, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert "Admin <admin@localhost>: admin" in whoami.stdout

    logged_out = run_dockyard(env, "logout")
    assert logged_out.returncode == 0, logged_out.stderr
    assert url not in json.loads(credentials.read_text())
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        assert api.get("/v1/auth/me").status_code == 401  # revoked, not only forgotten
    assert run_dockyard(env, "whoami").returncode == 1
