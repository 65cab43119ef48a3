"""Policies that route by rule, learning nothing: single, split, shadow.

- ``single``: the application's one linked model; today's behaviour (the
  query frontend does not even call the policy for it).
- ``split``: a weighted traffic split for canaries, ``weights`` by model
  (default: equal).  A request naming a ``uid`` is placed by a hash of it,
  so the same user always sees the same side; without one, at random.
- ``shadow``: the answer comes from the ``primary`` (default: the first
  linked model); every other model gets the same input and its agreement
  and latency are recorded, never waited for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from .base import PolicyBase, Query, draw, is_number


class SinglePolicy(PolicyBase):
    """The one linked model."""

    name = "single"
    max_models = 1


def uid_point(uid: int, salt: str = "") -> float:
    """A stable point in [0, 1) for a user id."""
    digest = hashlib.blake2b(f"{salt}:{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class SplitPolicy(PolicyBase):
    """A weighted split, sticky per ``uid``."""

    name = "split"

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(models, params)
        given = self.params.params.get("weights") or {m: 1.0 for m in self.models}
        if not isinstance(given, Mapping) or not all(
                is_number(w) and w >= 0 for w in given.values()):
            raise ValidationError("policy 'split': parameter 'weights' must map model names "
                                  "to non-negative numbers", argument="weights", value=given)
        unknown = sorted(set(given) - set(self.models))
        if unknown:
            raise ValidationError(f"policy 'split': weights name models that are not linked: "
                                  f"{', '.join(unknown)}", argument="weights", value=given)
        total = float(sum(given.values()))
        if total <= 0:
            raise ValidationError("policy 'split': the weights sum to zero",
                                  argument="weights", value=given)
        self.shares = [float(given.get(m, 0.0)) / total for m in self.models]
        salt = self.params.params.get("salt", "")
        self.salt = str(salt)

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        if query.uid is None:
            return [draw(self.rng, self.models, self.shares)]
        point = uid_point(query.uid, self.salt)
        acc = 0.0
        for model, share in zip(self.models, self.shares, strict=True):
            acc += share
            if point < acc:
                return [model]
        return [self.models[-1]]

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        return dict(zip(self.models, self.shares, strict=True))


class ShadowPolicy(PolicyBase):
    """Answer from the primary; mirror every input to the shadows."""

    name = "shadow"

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(models, params)
        primary = self.params.params.get("primary", self.models[0])
        if primary not in self.models:
            raise ValidationError(f"policy 'shadow': primary {primary!r} is not linked",
                                  argument="primary", value=primary)
        self.primary = str(primary)

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return [self.primary]

    def shadows(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return [m for m in self.models if m != self.primary]

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        return {m: (1.0 if m == self.primary else 0.0) for m in self.models}
