"""Data residency: the region a call's data goes to, derived from the endpoint actually called.

    region_of("openai", "https://eu.api.openai.com/v1")                   # Region("eu", "endpoint")
    region_of("bedrock", "https://bedrock-runtime.eu-central-1.amazonaws.com")   # Region("eu-central-1", ...)
    region_of("openai", None, static={"openai": "us"})                    # Region("us", "config")
    region_allowed("eu-central-1", ["eu"])                                # True: the rule names the zone

A static `providers.NAME.region` in `.genops.yml` overrides what the endpoint says (a private deployment behind a
proxy host, say). Without either, the provider's public default endpoint is assumed (api.openai.com and
api.anthropic.com serve from the US). Rules may name a zone (`eu`, `us`, `apac`, `local`) or an exact region; a
region matches a rule entry equal to it or to its zone.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Host patterns that name their region: (regex on the host, group holding the region).
_REGIONAL_HOSTS = [
    re.compile(r"^bedrock(?:-runtime|-agent-runtime)?(?:-fips)?\.(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d)\."),
    re.compile(r"^(?P<region>[a-z]+\d*)\.api\.cognitive\.microsoft\.com$"),
    re.compile(r"^(?P<region>[a-z]+\d*)\.openai\.azure\.com$"),  # region-named resources (a common convention)
    re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-aiplatform\.googleapis\.com$"),
    re.compile(r"^(?P<region>eu|us|jp|in|au|ca|kr|sg|uk)\.api\.openai\.com$"),
]

#: Public endpoints without a region in their name: where they serve from.
_DEFAULT_HOST_REGIONS = {
    "api.openai.com": "us",
    "api.anthropic.com": "us",
    "api.mistral.ai": "eu",
    "api.cohere.com": "us",
    "api.cohere.ai": "us",
    "generativelanguage.googleapis.com": "us",
    "api.groq.com": "us",
    "api.together.xyz": "us",
    "api-inference.huggingface.co": "us",
    "router.huggingface.co": "us",
}

#: Provider -> its default endpoint host when the component sets none (and no *_BASE_URL variable is set).
_DEFAULT_HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "mistral": "api.mistral.ai",
    "cohere": "api.cohere.com",
    "google": "generativelanguage.googleapis.com",
}
_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}

_AZURE_ZONES = {
    "eu": ("westeurope", "northeurope", "francecentral", "francesouth", "germanywestcentral", "germanynorth",
           "swedencentral", "swedensouth", "switzerlandnorth", "switzerlandwest", "norwayeast", "norwaywest",
           "polandcentral", "italynorth", "spaincentral", "uksouth", "ukwest"),
    "us": ("eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
           "westcentralus"),
    "apac": ("japaneast", "japanwest", "australiaeast", "australiasoutheast", "koreacentral", "southeastasia",
             "eastasia", "centralindia", "southindia"),
}


@dataclass(frozen=True)
class Region:
    name: str | None  # None: unknown
    basis: str  # config | endpoint | default | unknown


def endpoint_of(provider: str | None, configured: str | None) -> str | None:
    """The URL a call goes to: the component's configured endpoint, else the SDK's *_BASE_URL variable, else
    the provider's public default."""
    if configured:
        return configured
    env = _BASE_URL_ENV.get((provider or "").lower())
    if env and os.environ.get(env):
        return os.environ[env]
    host = _DEFAULT_HOSTS.get((provider or "").lower())
    return f"https://{host}" if host else None


def _host(endpoint: str) -> str:
    text = endpoint if "://" in endpoint else f"https://{endpoint}"
    return (urlsplit(text).hostname or "").lower()


def _is_local(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".local") or host.endswith(".internal"):
        return host != ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def region_of(provider: str | None, endpoint: str | None, static: Mapping[str, str] | None = None,
              aws_region: str | None = None) -> Region:
    """Where a call to `endpoint` sends data (see the module docstring for the order)."""
    configured = (static or {}).get((provider or "").lower())
    if configured:
        return Region(configured.lower(), "config")
    if aws_region:
        return Region(aws_region.lower(), "endpoint")
    if (provider or "").lower() == "aws" and not endpoint:
        # Bedrock clients call the region of the AWS configuration when the component names none.
        configured_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if configured_region:
            return Region(configured_region.lower(), "endpoint")
    url = endpoint_of(provider, endpoint)
    if not url:
        return Region(None, "unknown")
    host = _host(url)
    for pattern in _REGIONAL_HOSTS:
        found = pattern.match(host)
        if found:
            return Region(found.group("region"), "endpoint")
    if host in _DEFAULT_HOST_REGIONS:
        return Region(_DEFAULT_HOST_REGIONS[host], "default" if not endpoint else "endpoint")
    if _is_local(host):
        return Region("local", "endpoint")
    return Region(None, "unknown")


def zone_of(region: str) -> str:
    """The coarse zone of a region name: eu, us, apac, local, or the region itself when unknown."""
    r = region.lower()
    if r in ("eu", "us", "apac", "local"):
        return r
    for zone, names in _AZURE_ZONES.items():
        if r in names:
            return zone
    if r.startswith(("eu-", "europe-")):
        return "eu"
    if r.startswith(("us-", "northamerica-")):
        return "us"
    if r.startswith(("ap-", "asia-", "australia-", "jp", "kr", "sg", "au", "in")):
        return "apac"
    if r == "uk":
        return "eu"
    return r


def region_allowed(region: str | None, allowed: Sequence[str]) -> bool:
    if region is None:
        return False
    names = {a.lower() for a in allowed}
    return region.lower() in names or zone_of(region) in names


_REGION_SHAPES = re.compile(r"^(?:[a-z]{2}(?:-gov)?-[a-z]+-\d|[a-z]+-[a-z]+\d+)$")


def known_region(name: str) -> bool:
    """A zone, an Azure region name, or a region of the AWS / Google Cloud shape (eu-central-1, europe-west4)."""
    r = name.lower()
    return (r in ("eu", "us", "apac", "local", "uk") or any(r in names for names in _AZURE_ZONES.values())
            or bool(_REGION_SHAPES.match(r)))
