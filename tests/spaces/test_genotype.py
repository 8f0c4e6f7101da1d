"""Genotypes: the 12-slot value type, its text and JSON forms, named and random genotypes, the resolver."""

import dataclasses
import json
from pathlib import Path

import pytest

from spaces.genotype import (
    OPERATIONS,
    Genotype,
    named_genotypes,
    random_genotype,
    resolve_genotype,
)

MSMT_TEXT = "ag-ag/exc-ag/cross_att-ag/ag-none/ag-cross_att/exc-cross_att"
MSMT_OPS = ["ag", "ag", "exc", "ag", "cross_att", "ag", "ag", "none", "ag", "cross_att", "exc", "cross_att"]
REFERENCE = Path(__file__).parent / "reference" / "msinet_msmt_state_dict.json"


def test_the_published_genotype_is_named_msmt():
    msmt = named_genotypes()["msmt"]
    assert list(msmt.ops) == MSMT_OPS
    assert str(msmt) == MSMT_TEXT
    assert msmt.cell(0) == ("ag", "ag") and msmt.cell(5) == ("exc", "cross_att")


def test_genotype_is_a_frozen_hashable_value():
    g = Genotype(MSMT_OPS)
    assert g == Genotype(MSMT_OPS) and hash(g) == hash(Genotype(MSMT_OPS))
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.ops = ()


def test_compact_text_round_trips():
    assert Genotype.parse(MSMT_TEXT) == Genotype(MSMT_OPS)
    g = random_genotype(3)
    assert Genotype.parse(str(g)) == g


def test_json_round_trips():
    g = random_genotype(7)
    assert Genotype.from_json(g.to_json()) == g
    assert json.loads(g.to_json())["ops"] == list(g.ops)


def test_descriptive_names_map_to_the_official_short_names():
    g = Genotype.parse("channel_gate-identity/exchange-cross_attention/ag-ag/ag-ag/ag-ag/ag-ag")
    assert g.ops[:4] == ("ag", "none", "exc", "cross_att")
    assert str(g).startswith("ag-none/exc-cross_att/")


def test_random_genotypes_are_reproducible_and_valid():
    assert random_genotype(1) == random_genotype(1)
    assert len({random_genotype(s) for s in range(20)}) > 1
    assert all(op in OPERATIONS for op in random_genotype(5).ops)


def test_resolver_accepts_every_form(tmp_path):
    msmt = named_genotypes()["msmt"]
    path = tmp_path / "g.json"
    msmt.save(path)
    assert resolve_genotype(msmt) is msmt
    assert resolve_genotype("msmt") == msmt
    assert resolve_genotype(MSMT_TEXT) == msmt
    assert resolve_genotype(str(path)) == msmt
    assert resolve_genotype(path) == msmt
    assert resolve_genotype(MSMT_OPS) == msmt
    assert resolve_genotype("random:11") == random_genotype(11)


def test_resolver_reads_the_genotype_of_the_reference_key_listing():
    assert resolve_genotype(REFERENCE) == named_genotypes()["msmt"]


def test_wrong_length_says_what_was_expected():
    with pytest.raises(ValueError, match=r"12 operations \(6 groups of 2.*got 11"):
        Genotype(MSMT_OPS[:-1])


def test_unknown_operation_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown interaction operation 'conv'.*none, exc, ag, cross_att"):
        Genotype(["conv"] + MSMT_OPS[1:])


@pytest.mark.parametrize(
    "text", ["ag-ag/exc-ag", "ag-ag-ag/exc-ag/ag-ag/ag-ag/ag-ag/ag-ag", "ag-ag//ag-ag/ag-ag/a-a/"]
)
def test_malformed_text_is_rejected(text):
    with pytest.raises(ValueError, match="malformed genotype text"):
        Genotype.parse(text)


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ValueError, match=r"unknown genotype 'market'.*\['msmt'\]"):
        resolve_genotype("market")


def test_bad_random_seed_and_missing_file_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="random:SEED"):
        resolve_genotype("random:abc")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_genotype(str(tmp_path / "missing.json"))


def test_bad_json_is_rejected():
    with pytest.raises(ValueError, match="not valid JSON"):
        Genotype.from_json("{ops:")
    with pytest.raises(ValueError, match="'ops' list"):
        Genotype.from_json('{"names": []}')
