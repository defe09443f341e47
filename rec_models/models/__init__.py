"""Recommenders sharing one contract (`Recommender`): fit / score / recommend / save / load."""

from __future__ import annotations

from rec_models.models.base import Recommender, TrainData


def get_model(name: str) -> type[Recommender]:
    """Model class by name; a wrong name lists the valid choices."""
    from rec_models.models.attention import AttentionRecommender
    from rec_models.models.baselines import PopularityRecommender, RandomRecommender
    from rec_models.models.hybrid import HybridRecommender
    from rec_models.models.mf import MFRecommender

    models: dict[str, type[Recommender]] = {
        "random": RandomRecommender,
        "popularity": PopularityRecommender,
        "mf": MFRecommender,
        "attention": AttentionRecommender,
        "hybrid": HybridRecommender,
    }
    if name not in models:
        raise ValueError(f"unknown model '{name}': choose one of {', '.join(models)}")
    return models[name]


__all__ = ["Recommender", "TrainData", "get_model"]
