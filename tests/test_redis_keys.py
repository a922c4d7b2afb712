"""The Redis store's key space: the names it gives keys, and that a user's share a slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from agent_sessions.store.redis.keys import KeySpace, SessionKeys

# User ids are anything but whitespace and braces (validation.user_id).
USER_IDS = ["user-1", "u", "alice@example.com", "org:42/user:7", "用户", "a" * 200, "x]:s:y"]


def test_the_layout_of_a_sessions_keys_is_the_stored_one() -> None:
    # The names existing data is under: changing one is a migration.
    keys = KeySpace("sessions:").session("user-1", "s-1")

    assert keys == SessionKeys(
        meta="sessions:{user-1}:s:s-1",
        state="sessions:{user-1}:s:s-1:state",
        turns="sessions:{user-1}:s:s-1:turns",
        requests="sessions:{user-1}:s:s-1:requests",
        archive="sessions:{user-1}:s:s-1:archive",
        index="sessions:{user-1}:index",
        items="sessions:{user-1}:s:s-1:items",
        item_ids="sessions:{user-1}:s:s-1:item_ids",
        archived_items="sessions:{user-1}:s:s-1:archived_items",
        user_state="sessions:{user-1}:user_state",
        app_scope="sessions:app_state",
        events="sessions:{user-1}:s:s-1:events",
        watched="sessions:{user-1}:s:s-1:watched",
    )
    assert KeySpace("sessions:").user_index("user-1") == "sessions:{user-1}:index"


def test_an_apps_keys_are_apart_from_the_default_apps_and_a_tenants() -> None:
    shop = KeySpace("sessions:").app("shop")

    assert shop.session("user-1", "s-1").meta == "sessions:a:shop:{user-1}:s:s-1"
    assert shop.app_state == "sessions:a:shop:app_state"
    assert KeySpace("sessions:").namespace("acme").app("shop").prefix == "sessions:t:acme:a:shop:"
    assert KeySpace("sessions:").app("") == KeySpace("sessions:")


def test_on_a_cluster_a_script_gets_the_users_outbox_in_the_app_states_place() -> None:
    keys = KeySpace("sessions:", app_outbox=True).session("user-1", "s-1")

    assert keys.app_scope == "sessions:{user-1}:app_outbox"


def test_a_write_script_gets_a_sessions_keys_in_the_order_of_its_header() -> None:
    keys = KeySpace("p:").session("u", "s")

    assert keys.all == (
        keys.meta,
        keys.state,
        keys.turns,
        keys.requests,
        keys.index,
        keys.archive,
        keys.items,
        keys.item_ids,
        keys.archived_items,
        keys.user_state,
        keys.app_scope,
        keys.events,
        keys.watched,
    )


def test_a_tenants_keys_are_under_its_own_prefix() -> None:
    space = KeySpace("sessions:")
    tenant = space.namespace("acme")

    assert tenant.session("user-1", "s-1").meta == "sessions:t:acme:{user-1}:s:s-1"
    assert tenant.user_index("user-1") == "sessions:t:acme:{user-1}:index"
    assert tenant.namespace("b").prefix == "sessions:t:acme:t:b:"


@pytest.mark.parametrize("user_id", USER_IDS)
def test_the_keys_scripts_derive_from_the_index_are_the_sessions_keys(user_id: str) -> None:
    # LIST and CREATE join a session id from the index to these; they must name the
    # same keys as the store passes in KEYS.
    user = KeySpace("sessions:").user(user_id)
    session = user.session("s-9")

    assert user.session_prefix + "s-9" == session.meta
    assert user.session_prefix + "s-9" + user.state_suffix == session.state


@pytest.mark.parametrize("prefix", ["sessions:", "", "app:t:acme:"])
@pytest.mark.parametrize("user_id", USER_IDS)
def test_every_key_of_a_user_hashes_to_one_cluster_slot(prefix: str, user_id: str) -> None:
    user = KeySpace(prefix, app_outbox=True).user(user_id)  # as on a cluster
    names = [user.index]
    for session_id in ("s-1", "another-session", "x" * 64):
        names += user.session(session_id).all
        names.append(user.session_prefix + session_id + user.state_suffix)

    assert {key_slot(name.encode()) for name in names} == {key_slot(user_id.encode())}


def test_users_spread_over_slots() -> None:
    space = KeySpace("sessions:")
    slots = {key_slot(space.user_index(f"user-{n}").encode()) for n in range(100)}

    assert len(slots) > 90


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [
        ("sessions:", False),
        ("a}b{c", False),
        ("{sessions}:", True),
        ("app{}:", True),
        ("app{x", False),
    ],
)
def test_a_prefix_with_a_hash_tag_is_recognised(prefix: str, tagged: bool) -> None:
    assert KeySpace(prefix).prefix_has_hash_tag is tagged
