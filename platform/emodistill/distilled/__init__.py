"""Distilled sets: synthetic sets chosen for their budget from a trained generator (candidate selection or latent
distribution matching), written with their provenance."""

from emodistill.distilled.matching import MatchConfig, match_latents
from emodistill.distilled.selection import PICKERS, cover_pick, herding_pick, moments_pick
from emodistill.distilled.sets import SetSpec, distilled_set, generator_digest, provenance, write_distilled_set

__all__ = ["MatchConfig", "match_latents", "PICKERS", "cover_pick", "herding_pick", "moments_pick", "SetSpec",
           "distilled_set", "generator_digest", "provenance", "write_distilled_set"]
