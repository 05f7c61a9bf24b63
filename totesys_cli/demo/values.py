"""Deterministic values for the generated source: a hash of (seed, parts), never a
random stream, so the same seed always gives the same database; and the vocabulary
the names are drawn from (apostrophes included, as the real data has them)."""

from __future__ import annotations

import hashlib

CURRENCIES = ("GBP", "USD", "EUR")
CITIES = (
    "Manchester",
    "Leeds",
    "London",
    "Aliso Viejo",
    "New Patienceburgh",
    "Cape Town",
    "Shanghai",
    "Lake Charles",
    "Ruthmouth",
    "Dublin",
    "Saint Petersburg",
    "Valencia",
)
COUNTRIES = (
    "United Kingdom",
    "United States",
    "Lao People's Democratic Republic",
    "Korea, Democratic People's Republic of",
    "Ireland",
    "Côte d'Ivoire",
    "Spain",
    "South Africa",
    "China",
    "Saint Kitts and Nevis",
)
STREETS = (
    "Avenue Road",
    "O'Connell Street",
    "Crescent Mews",
    "Weimann Parkway",
    "Kings' Lane",
    "Moor Lane",
    "Bridge Street",
    "Castle Court",
)
FIRST_NAMES = (
    "Jeremie",
    "Deron",
    "Jeanette",
    "Ana",
    "Magdalena",
    "Korey",
    "Raphael",
    "Oswaldo",
    "Brody",
    "Jazmyn",
    "Meda",
    "Imani",
    "Stan",
    "Rik",
    "Duncan",
    "Irving",
)
LAST_NAMES = (
    "Franey",
    "Beier",
    "Erdman",
    "Glover",
    "O'Keefe",
    "Zieme",
    "Rippin",
    "Bergnaum",
    "Ratke",
    "Kuhn",
    "D'Amore",
    "Cremin",
    "Lehner",
    "Hessel",
    "Fritsch",
    "Boyer",
)
DEPARTMENTS = (
    "Sales",
    "Purchasing",
    "Production",
    "Dispatch",
    "Finance",
    "Facilities",
    "Communications",
    "HR",
)
COMPANY_WORDS = (
    "Fahey",
    "Leannon",
    "Armstrong",
    "Kohler",
    "Frami",
    "Mraz",
    "Bosco",
    "Moen",
    "Grant",
    "Yost",
    "O'Hara",
    "Jacobson",
)
COMPANY_SUFFIXES = (
    " and Sons",
    ", Rowe and Okuneva",
    " LLC",
    " Inc",
    " - Pacocha",
    " Group",
    "'s Totes",
    " Ltd",
)
DESIGN_WORDS = (
    "Wooden",
    "Bronze",
    "Granite",
    "Soft",
    "Fresh",
    "Frozen",
    "Rubber",
    "Cotton",
    "Steel",
    "Plastic",
    "Concrete",
    "Metal",
)


def h(seed: int, *parts: object) -> int:
    """A stable 64-bit value for (seed, parts): the only source of variety here."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def pick(seq, seed: int, *parts: object):
    return seq[h(seed, *parts) % len(seq)]


def person(seed: int, *parts: object) -> tuple[str, str]:
    """A first and a last name."""
    return pick(FIRST_NAMES, seed, *parts, "first"), pick(LAST_NAMES, seed, *parts, "last")


def email(first: str, last: str) -> str:
    return f"{first}.{last}".lower().replace("'", "") + "@terrifictotes.com"


def phone(seed: int, *parts: object) -> str:
    value = h(seed, *parts, "phone")
    return f"{1000 + value % 9000} {100000 + value // 9000 % 900000}"
