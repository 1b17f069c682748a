"""HTTP handlers, one module per area. Each module exposes ``routes`` (a ``server.web.Routes``)."""

from __future__ import annotations

import importlib

from aiohttp import web

# Order matters only where paths overlap: literal paths (e.g. /api/v1/accounts/lookup) are
# registered by their module before the parametrised ones of the same prefix.
MODULES = [
    "ops",
    "instance",
    "oauth",
    "accounts",
    "admin_domains",
    "admin_domain_allows",
    "reports",
    "admin_reports",
    "safety",
    "feeds",
    "subscriptions",
    "statuses",
    "timelines",
    "notifications",
    "search",
    "topics",
    "wellbeing",
    "groups",
    "e2ee",
    "openapi",
    "wellknown",
    "activitypub",
    "e2ee_ap",
    "inbox",
]


def install_all(app: web.Application) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"server.api.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"server.api.{name}":
                continue  # area not built yet
            raise
        module.routes.install(app)
