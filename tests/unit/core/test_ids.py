"""Ids: ULID-shaped, sortable by time, unique; random bits read ahead from the kernel, never shared."""

from __future__ import annotations

import os
import sys

import pytest

from hypothesis import given
from hypothesis import strategies as st

from remit.core.ids import PREFIXES, RandomIdFactory, SequentialIdFactory, _encode, parse_id, random_bits, random_hex


def test_random_ids_parse_sort_by_time_and_do_not_repeat() -> None:
    clock = iter(range(1_000, 1_000 + 20_000))
    ids = RandomIdFactory(lambda: next(clock))
    made = [ids.new("decision") for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(parse_id("decision", made_id) == made_id for made_id in made[:100])


@given(bits=st.integers(min_value=1, max_value=200))
def test_random_bits_stay_within_their_width(bits: int) -> None:
    assert 0 <= random_bits(bits) < 1 << bits


def test_random_bits_use_the_whole_width() -> None:
    """The top bit is set about half the time: nothing is shifted away."""
    top = sum(random_bits(80) >> 79 for _ in range(4_000))
    assert 1_700 < top < 2_300


def test_random_hex_reads_across_the_buffer_without_repeating() -> None:
    values = [random_hex(8) for _ in range(5_000)]  # ~10 refills of the read-ahead buffer
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in values)
    assert len(set(values)) == len(values)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_never_gets_the_parents_bytes() -> None:
    random_hex(1)  # the parent's buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes and leave at once
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != random_hex(16)


def _encode_by_division(number: int, length: int) -> str:
    """The reference: one base-32 digit per division, least significant first."""
    digits = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        digits.append("0123456789abcdefghjkmnpqrstvwxyz"[rest])
    return "".join(reversed(digits))


@given(data=st.data(), length=st.integers(min_value=1, max_value=30))
def test_the_table_encoding_equals_the_digit_by_digit_one(data: st.DataObject, length: int) -> None:
    number = data.draw(st.integers(min_value=0, max_value=32**length - 1))
    assert _encode(number, length) == _encode_by_division(number, length)


@given(milliseconds=st.integers(min_value=0, max_value=2**48 - 1))
def test_a_random_id_is_its_time_then_its_random_bits(milliseconds: int) -> None:
    """The body is 10 characters of milliseconds, then 16 of random bits, as ids have always been made."""
    body = RandomIdFactory(lambda: milliseconds).new("task").removeprefix("tsk_")
    assert body[:10] == _encode_by_division(milliseconds, 10)
    assert len(body) == 26
    assert SequentialIdFactory().new("task") == "tsk_" + "0" * 25 + "1"


def test_every_kind_has_a_prefix() -> None:
    assert {"decision", "event", "task", "credential"} <= set(PREFIXES)
