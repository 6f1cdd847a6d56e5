"""Weighted and sticky routing."""

import random
from collections import Counter

import pytest

from app.serving.router import NoRoutableModel, Router, bucket, hash_user, merge_weights, traffic_shares


def test_weighted_random_follows_weights():
    rng = random.Random(1)
    router = Router({"v1": 90, "v2": 10})
    counts = Counter(router.choose(rand=rng.random) for _ in range(20_000))
    assert 0.88 < counts["v1"] / 20_000 < 0.92


def test_zero_weight_is_never_routed():
    router = Router({"v1": 0, "v2": 5})
    assert {router.choose(rand=random.Random(i).random) for i in range(500)} == {"v2"}
    assert {router.choose(f"user-{i}") for i in range(500)} == {"v2"}


def test_unloaded_version_is_not_routed():
    router = Router({"v1": 50, "v2": 50}, servable=["v2"])
    assert {router.choose(f"u{i}") for i in range(200)} == {"v2"}
    assert router.share("v2") == 1.0 and router.share("v1") == 0.0


def test_no_routable_version_raises():
    with pytest.raises(NoRoutableModel, match="no model version"):
        Router({"v1": 0, "v2": 0}).choose()
    with pytest.raises(NoRoutableModel, match="no model version"):
        Router({"v1": 10}, servable=[]).choose("x")


def test_sticky_is_stable_and_independent_of_router_instance():
    first = Router({"v1": 50, "v2": 50})
    second = Router({"v1": 50, "v2": 50})
    for i in range(300):
        user = f"user-{i}"
        assert first.choose(user, salt="s") == second.choose(user, salt="s") == first.choose(user, salt="s")


def test_sticky_split_follows_weights_across_users():
    router = Router({"v1": 70, "v2": 30})
    counts = Counter(router.choose(f"user-{i}", salt="exp") for i in range(20_000))
    assert 0.68 < counts["v1"] / 20_000 < 0.72


def test_weight_change_moves_only_users_in_the_moved_slice():
    before = Router({"v1": 50, "v2": 50})
    after = Router({"v1": 90, "v2": 10})
    moves = Counter((before.choose(f"u{i}"), after.choose(f"u{i}")) for i in range(2000))
    assert moves[("v1", "v2")] == 0, "a v1 user moved although v1 only gained traffic"
    # About 40 % of all users move from v2 to v1 (80 % of v2's half); the rest of v2 stays.
    assert 0.36 < moves[("v2", "v1")] / 2000 < 0.44, moves
    assert moves[("v1", "v1")] > 0 and moves[("v2", "v2")] > 0, moves


def test_bucket_depends_on_salt_and_hash_is_not_the_id():
    assert bucket("a", "user") != bucket("b", "user")
    assert 0 <= bucket("a", "user") < 1
    assert "user" not in hash_user("salt", "user") and len(hash_user("salt", "user")) == 16


def test_three_versions():
    router = Router({"v1": 1, "v2": 1, "v3": 2})
    counts = Counter(router.choose(f"u{i}") for i in range(20_000))
    assert set(counts) == {"v1", "v2", "v3"}
    assert 0.48 < counts["v3"] / 20_000 < 0.52


def test_traffic_shares_count_only_routable_versions():
    assert traffic_shares({"v1": 90, "v2": 10}) == {"v1": 0.9, "v2": 0.1}
    assert traffic_shares({"v1": 50, "v2": 50}, servable=["v2"]) == {"v1": 0.0, "v2": 1.0}
    assert traffic_shares({"v1": 0, "v2": 0}) == {"v1": 0.0, "v2": 0.0}
    assert Router({"v1": 1, "v2": 3}).shares == traffic_shares({"v1": 1, "v2": 3})


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"v3": 10}, "unknown model version 'v3'"),
        ({"v1": 0, "v2": 0}, "at least one weight"),
    ],
)
def test_merge_weights_rejects(update, message):
    with pytest.raises(ValueError, match=message):
        merge_weights(update, ["v1", "v2"], {"v1": 50, "v2": 50})


def test_merge_weights_partial_update_keeps_others():
    assert merge_weights({"v1": 90}, ["v1", "v2"], {"v1": 50, "v2": 50}) == {"v1": 90, "v2": 50}
    assert merge_weights({"v3": 5}, ["v1", "v2", "v3"], {"v1": 50, "v2": 50}) == {"v1": 50, "v2": 50, "v3": 5}
