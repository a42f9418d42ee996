"""The call page, whichever provider serves it: its HTML, UI script and styles (`assets/`),
its message catalogs (`texts/`, `catalogs.py`), the ICE servers and policy its browsers
are handed (`ice.py`), and `CallPage` (`page.py`): the page, its headers and the ending
pages. Providers reach it through `teleconsult.plugin`."""

from __future__ import annotations

from teleconsult.callpage.catalogs import Catalog, Catalogs
from teleconsult.callpage.ice import BrowserIce, IceServers
from teleconsult.callpage.page import (
    CONTENT_SECURITY_POLICY,
    Asset,
    CallPage,
    default_call_page,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "Asset",
    "BrowserIce",
    "CallPage",
    "Catalog",
    "Catalogs",
    "IceServers",
    "default_call_page",
]
