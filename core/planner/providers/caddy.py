"""Static files are served by Caddy (Debian's `caddy` package) with a generated Caddyfile."""

from __future__ import annotations

CADDYFILE = "Caddyfile"  # a static asset: rendered to /assets/Caddyfile
START_CMD = "caddy run --config /assets/Caddyfile --adapter caddyfile"


def caddyfile(root: str, *, spa: bool = False, browse: bool = False) -> str:
    """Serve `root` on $PORT (80 without it); an SPA falls back to /index.html for client-side routes."""
    lines = [
        "{",
        "\tadmin off",
        "\tauto_https off",
        "}",
        "",
        ":{$PORT:80} {",
        f'\troot * "{root}"',
        "\tencode gzip",
    ]
    if spa:
        lines.append("\ttry_files {path} /index.html")
    lines += ["\tfile_server browse" if browse else "\tfile_server", "}", ""]
    return "\n".join(lines)
