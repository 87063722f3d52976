"""Write the generated configuration of Traefik or the registry from Dockyard's settings (the environment),
as `dockyard up` does: for a production install, the systemd units in infra/systemd/ run this before
starting either, so the API token and the registry's password stay in the settings' secrets file.

    python -m cli.render traefik DIR     writes DIR/traefik.yml
    python -m cli.render registry DIR    writes DIR/registry.yml and DIR/registry.htpasswd
"""

from __future__ import annotations

import sys
from pathlib import Path

from cli.platform import render_registry_config, render_traefik_config
from core.settings import SettingsError, load_settings

RENDERERS = {"traefik": render_traefik_config, "registry": render_registry_config}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in RENDERERS:
        print(f"usage: python -m cli.render {{{'|'.join(RENDERERS)}}} DIR", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    if settings.api_token is None or settings.registry_password is None:
        print("DOCKYARD_API_TOKEN and DOCKYARD_REGISTRY_PASSWORD must be set", file=sys.stderr)
        return 1
    print(RENDERERS[argv[0]](settings, Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
