"""The price book: genai-prices plus genops' YAML overlays (local, retired, batch, tenant contracts, limits).

    from genops_cli.pricing import get_price_book
    book = get_price_book()
    priced = book.price(usage, "gpt-4o-mini", "openai", at=call.started_at, tenant="acme-corp")
    priced.cost, priced.list_cost, priced.unit_prices, priced.snapshot_id, priced.priced
"""

from genops_cli.pricing.book import (
    VARIANT_CONTEXT,
    PriceBook,
    PricedUsage,
    PriceTier,
    ResolvedPrice,
    compute_cost,
    cost_components,
    get_price_book,
    reset_price_book,
)
from genops_cli.pricing.overlays import (
    ENV_PRICING_DIR,
    PRICE_FIELDS,
    VARIANTS,
    OverlaySet,
    TenantContract,
    bundled_overlay_dir,
    load_overlay_file,
    load_overlays,
    overlay_dirs,
    parse_when,
)

__all__ = [
    "ENV_PRICING_DIR",
    "PRICE_FIELDS",
    "VARIANTS",
    "VARIANT_CONTEXT",
    "OverlaySet",
    "PriceBook",
    "PriceTier",
    "PricedUsage",
    "ResolvedPrice",
    "TenantContract",
    "bundled_overlay_dir",
    "compute_cost",
    "cost_components",
    "get_price_book",
    "load_overlay_file",
    "load_overlays",
    "overlay_dirs",
    "parse_when",
    "reset_price_book",
]
