"""The key format: prefix, environment, ≥160 bits of randomness, a checksum that catches typos."""

import math

import pytest

from plugins.apikeys.keyformat import (
    ALPHABET,
    RANDOM_CHARS,
    checksum,
    generate_key,
    mask,
    parse_key,
    valid_prefix,
)


def test_generated_key_parses_with_its_prefix_and_environment():
    key = generate_key("acme", "test")
    parsed = parse_key(key)
    assert parsed is not None
    assert (parsed.prefix, parsed.environment, parsed.display_prefix) == ("acme", "test", "acme_test")
    assert key.startswith("acme_test_")


def test_randomness_is_at_least_160_bits_and_keys_differ():
    assert RANDOM_CHARS * math.log2(len(ALPHABET)) >= 160
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200


def test_every_single_character_change_is_rejected():
    key = generate_key()
    for position in range(len("pk_live_"), len(key)):
        replacement = "A" if key[position] != "A" else "B"
        assert parse_key(key[:position] + replacement + key[position + 1:]) is None, position


@pytest.mark.parametrize("token", [
    "", "pk_live_", "pk_prod_" + "a" * 38, "Pk_live_" + "a" * 38, "pk_live_" + "a" * 37, "pk_live_" + "a" * 39,
    "pk_live_" + "!" * 38, "x" * 5000,
])
def test_malformed_tokens_are_rejected(token):
    assert parse_key(token) is None


def test_checksum_is_crc32_in_six_base62_characters():
    head = "pk_live_" + "a" * 32
    assert len(checksum(head)) == 6
    assert parse_key(head + checksum(head)) is not None


def test_prefix_rules_and_masking():
    assert valid_prefix("pk") and valid_prefix("acme2")
    assert not valid_prefix("p") and not valid_prefix("2pk") and not valid_prefix("pk_x") and not valid_prefix("PK")
    with pytest.raises(ValueError):
        generate_key("bad_prefix")
    assert mask("pk_live", "abcd") == "pk_live_…abcd"
