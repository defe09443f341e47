"""A synthetic ad-click log with a known click model, in the bring-your-own file format.

Ads belong to one of 16 topics and their copy names the product ("Apex trail sneakers 12: Run
further ..."); each user has one to three topic interests, unrelated to their demographics; every
user is shown ads drawn uniformly at random (so impressions carry no signal), and clicks by
interest: an ad of an interest topic is clicked with probability 0.7 x its appeal, any other with
0.02 x appeal (appeal uniform in [0.6, 1.4] per ad, mean 1), about 10% of impressions overall.
With `conversions`, a click on an interest ad converts with probability 0.3, any other with 0.05.

Files: users.csv (user_id, age, gender, occupation), items.csv (item_id, title, genres = the
topic, text), interactions.csv (user_id, item_id, timestamp, rating 1 = clicked / 0 = shown and
not clicked, [conversion 0/1]); read it with positive_threshold = 1 (the DATASET=synthetic preset):

    python -m rec_models.data.synthetic [--dest data/synthetic-ads] [--ads 240] [--users 1200]
        [--impressions 40] [--conversions]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.data.custom import save_canonical
from rec_models.data.events import to_canonical
from rec_models.data.schema import Dataset

TOPICS: dict[str, tuple[list[str], str]] = {
    "Running": (
        ["running shoes", "trail sneakers", "sports watch", "running jacket", "hydration vest"],
        "Run further and faster, built for marathon training and daily jogs.",
    ),
    "Coffee": (
        ["espresso machine", "coffee beans", "milk frother", "coffee grinder", "pour-over kettle"],
        "Brew barista-quality coffee at home, rich crema every morning.",
    ),
    "Gaming": (
        ["gaming mouse", "mechanical keyboard", "gaming headset", "gamepad", "gaming chair"],
        "Level up your play with low latency gear for PC and console gamers.",
    ),
    "Gardening": (
        ["garden hose", "pruning shears", "flower seeds", "raised planter", "compost bin"],
        "Grow a greener garden, from vegetable beds to blooming flowers.",
    ),
    "Travel": (
        ["carry-on suitcase", "travel pillow", "city break flights", "beach hotel", "backpack"],
        "Book your next trip abroad, flights, hotels and luggage for every journey.",
    ),
    "Skincare": (
        ["face serum", "moisturizer", "sunscreen lotion", "cleansing balm", "eye cream"],
        "Glowing healthy skin with a gentle daily skincare routine.",
    ),
    "Cooking": (
        ["chef's knife", "cast iron skillet", "stand mixer", "spice set", "nonstick pans"],
        "Cook like a chef, kitchen tools for delicious home-made meals.",
    ),
    "Pets": (
        ["dog food", "cat tree", "pet bed", "chew toys", "aquarium kit"],
        "Happy healthy pets, treats and toys your dog or cat will love.",
    ),
    "Fitness": (
        ["yoga mat", "dumbbell set", "resistance bands", "protein powder", "foam roller"],
        "Get stronger at home with gym equipment for every workout.",
    ),
    "Music": (
        ["acoustic guitar", "studio headphones", "vinyl records", "digital piano", "microphone"],
        "Play and listen to music the way artists do, from first chords to the studio.",
    ),
    "Books": (
        ["mystery novels", "audiobooks", "e-reader", "bookshelf", "reading lamp"],
        "Lose yourself in a good book, bestselling fiction and stories to read tonight.",
    ),
    "Photography": (
        ["camera lens", "tripod", "camera bag", "memory card", "photo printer"],
        "Capture sharp photos and video, gear for every photographer.",
    ),
    "Cycling": (
        ["road bike", "bike helmet", "cycling gloves", "bike lights", "bike lock"],
        "Ride the city and the hills, bicycles and accessories for cyclists.",
    ),
    "Baby": (
        ["baby stroller", "baby monitor", "diapers", "crib", "baby carrier"],
        "Everything for your newborn, safe and gentle products for babies and parents.",
    ),
    "Home office": (
        ["standing desk", "office chair", "monitor arm", "desk lamp", "webcam"],
        "Work from home in comfort, an ergonomic office setup for long days.",
    ),
    "Camping": (
        ["tent", "sleeping bag", "camping stove", "headlamp", "hiking boots"],
        "Sleep under the stars, outdoor gear for camping and hiking trips.",
    ),
}
BRANDS = ["Apex", "Nordic", "Lumen", "Vista", "Orbit", "Cedar", "Pulse", "Harbor", "Zenith"]
OCCUPATIONS = ["engineer", "teacher", "student", "nurse", "artist", "lawyer", "writer", "other"]
P_INTEREST, P_OTHER = 0.7, 0.02  # click probability before the ad's appeal
P_CONVERT_INTEREST, P_CONVERT_OTHER = 0.3, 0.05


@dataclass
class ClickModel:
    """The generator's ground truth, for tests: topic index per ad, interest mask per user."""

    ad_topic: np.ndarray  # (n_ads,) int
    interests: np.ndarray  # (n_users, n_topics) bool


def generate(
    n_ads: int = 240,
    n_users: int = 1200,
    impressions_per_user: int = 40,
    conversions: bool = False,
    seed: int = 0,
) -> tuple[Dataset, ClickModel]:
    """The dataset (canonical tables, rating 1/0 read with positive_threshold 1) and its truth."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    ad_topic = np.arange(n_ads) % len(names)
    titles, texts = [], []
    for a, t in enumerate(ad_topic):
        products, pitch = TOPICS[names[t]]
        product = products[(a // len(names)) % len(products)]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        titles.append(f"{brand} {product} {a + 1}")
        texts.append(f"{brand} {product}: {pitch}")
    items = pd.DataFrame({
        "item_id": np.arange(1, n_ads + 1), "title": titles,
        "genres": [names[t] for t in ad_topic], "text": texts,
    })  # fmt: skip
    users = pd.DataFrame({
        "user_id": np.arange(1, n_users + 1),
        "age": rng.integers(18, 70, n_users),
        "gender": rng.choice(["M", "F"], n_users),
        "occupation": rng.choice(OCCUPATIONS, n_users),
    })  # fmt: skip
    interests = np.zeros((n_users, len(names)), dtype=bool)
    for u in range(n_users):
        interests[u, rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False)] = True
    appeal = rng.uniform(0.6, 1.4, n_ads)
    u = np.repeat(np.arange(n_users), impressions_per_user)
    a = rng.integers(0, n_ads, len(u))  # impressions uniformly at random
    hit = interests[u, ad_topic[a]]
    click = rng.random(len(u)) < np.where(hit, P_INTEREST, P_OTHER) * appeal[a]
    stamps = 1_700_000_000 + rng.integers(0, 30 * 86_400, len(u))
    inter = pd.DataFrame({
        "user_id": u + 1, "item_id": a + 1, "timestamp": stamps, "rating": click.astype(float),
    })  # fmt: skip
    inter = inter.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if conversions:
        hit_sorted = interests[inter["user_id"] - 1, ad_topic[inter["item_id"] - 1]]
        p = np.where(hit_sorted, P_CONVERT_INTEREST, P_CONVERT_OTHER)
        inter["conversion"] = ((inter["rating"] > 0) & (rng.random(len(inter)) < p)).astype(int)
    canonical = to_canonical(inter, "interactions.csv", "impressions", positive_threshold=1.0)
    return Dataset("synthetic-ads", users, items, canonical), ClickModel(ad_topic, interests)


def write_files(dest: str | os.PathLike[str], ds: Dataset) -> Path:
    """users.csv, items.csv, interactions.csv into dest, atomically; the outcome only in
    `rating` 1/0 (and `conversion`), as an ad log exported from a ratings-shaped table is."""
    columns = ["user_id", "item_id", "timestamp", "rating"]
    inter = ds.interactions[columns].copy()
    inter["rating"] = ds.interactions["click"].astype(float)
    if ds.interactions["conversion"].any():
        inter["conversion"] = ds.interactions["conversion"]
    # without a click column every row reads as a click, so no `label` is written
    return save_canonical(Dataset(ds.name, ds.users, ds.items, inter), dest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic ad-click log.")
    parser.add_argument("--dest", default="data/synthetic-ads")
    parser.add_argument("--ads", type=int, default=240)
    parser.add_argument("--users", type=int, default=1200)
    parser.add_argument("--impressions", type=int, default=40, help="per user")
    parser.add_argument("--conversions", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ds, _ = generate(args.ads, args.users, args.impressions, args.conversions, args.seed)
    dest = write_files(args.dest, ds)
    inter = ds.interactions
    print(
        f"{dest}: {len(ds.users)} users, {len(ds.items)} ads, {len(inter)} impressions, "
        f"{inter['click'].mean():.1%} clicked, {int(inter['conversion'].sum())} conversions"
    )


if __name__ == "__main__":
    main()
