"""Amounts and prices as people read them; pure.

``money(5022.4, "USD")`` is ``$5,022``; small amounts keep the digits that matter
(``$6.88``, ``$0.03585``). A currency other than USD is written as its code
(``EUR 5,022``), so two currencies never look alike.
"""

from __future__ import annotations

import math

from llmfleet.costs.prices import ReplicaPrice

SYMBOLS = {"USD": "$"}


def money(amount: float, currency: str, *, sign: bool = False) -> str:
    """An amount with its currency; ``sign`` writes ``+`` before a positive one."""
    if not math.isfinite(amount):
        raise ValueError(f"not an amount: {amount}")  # a bug upstream, never shown as inf
    magnitude = abs(amount)
    if magnitude >= 100 or magnitude == 0:
        digits = f"{magnitude:,.0f}"
    elif magnitude >= 1:
        digits = f"{magnitude:,.2f}"
    else:
        digits = f"{magnitude:.4g}"
        if "e" in digits:  # an agent's few calls: 0.00000646, never 6.46e-06
            places = 3 - math.floor(math.log10(magnitude))
            digits = f"{magnitude:.{places}f}".rstrip("0")
    prefix = SYMBOLS.get(currency)
    body = f"{prefix}{digits}" if prefix else f"{currency} {digits}"
    if amount < 0 and digits.strip("0.,") != "":
        return "-" + body
    return ("+" + body) if sign and amount > 0 else body


def optional_money(amount: float | None, currency: str, *, missing: str = "-") -> str:
    return missing if amount is None else money(amount, currency)


def unit_phrase(price: ReplicaPrice, currency: str) -> str:
    """``$6.88/GPU-hour`` or ``$0.03161/vCPU-hour``: the unit price a replica pays."""
    if price.gib_price is not None:
        vcpu, gib = money(price.unit_price, currency), money(price.gib_price, currency)
        return f"{vcpu}/vCPU-hour + {gib}/GiB-hour"
    return f"{money(price.unit_price, currency)}/GPU-hour"


def price_phrase(price: ReplicaPrice, currency: str) -> str:
    """``1 nvidia-h100, AWS p5.48xlarge on-demand at $6.88/GPU-hour, as of 2026-11-09``."""
    ref = price.ref
    source, _, when = ref.describe().partition(", ")
    return f"{price.units}, {source} at {unit_phrase(price, currency)}, {when}"
