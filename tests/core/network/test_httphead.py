"""Strict request heads: one canonical reading of every head the proxy accepts."""

from __future__ import annotations

import asyncio

import pytest

from vibebox_core.network.httphead import HeadError, parse_head, read_head, split_authority


def test_parse_head() -> None:
    request = parse_head(b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\nX-Y:  v \r\n\r\n")
    assert (request.method, request.target, request.version) == (
        "GET",
        "http://a.test/x",
        "HTTP/1.1",
    )
    assert request.header("host") == ["a.test"] and request.header("x-y") == ["v"]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n\x00", 400),
        (b"GET / HTTP/1.1\r\nX: \x7f\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nX: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\tX: a\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n", 400),
    ],
)
def test_parse_head_refuses(head: bytes, status: int) -> None:
    with pytest.raises(HeadError) as refused:
        parse_head(head)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("Example.COM.:443", ("example.com", 443)),
        ("example.com", ("example.com", 80)),
        ("[::FFFF:127.0.0.1]:443", ("::ffff:7f00:1", 443)),
        ("2130706433:443", ("127.0.0.1", 443)),
        ("0x7f.1:443", ("127.0.0.1", 443)),
        ("[2001:DB8::1]", ("2001:db8::1", 80)),
    ],
)
def test_split_authority_canonical(authority: str, expected: tuple[str, int]) -> None:
    assert split_authority(authority, 80) == expected


@pytest.mark.parametrize(
    "authority",
    [
        "::1:443",
        "[::1",
        "[::1]x",
        "[a.test]:443",
        "[fe80::1%25eth0]:443",
        "a.test:",
        "a.test:99999",
        "a.test:+1",
        "a b:1",
        "u@a.test:1",
        "",
        ":443",
        "a.test:\u0664\u0664\u0663",
    ],
)
def test_split_authority_refuses(authority: str) -> None:
    with pytest.raises(ValueError):
        split_authority(authority, 80)


async def test_read_head_stops_at_a_bare_lf_and_bounds_the_size() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\nHost: a\n\n")
    with pytest.raises(HeadError, match="bare LF"):
        await read_head(reader)
    reader = asyncio.StreamReader(limit=1 << 20)
    reader.feed_data(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 40000 + b"\r\n\r\n")
    with pytest.raises(HeadError) as refused:
        await read_head(reader)
    assert refused.value.status == 431
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY")
    assert await read_head(reader) == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_read_head_continues_after_a_prefix() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"ET / HTTP/1.1\r\nHost: a\r\n\r\nBODY")
    assert await read_head(reader, b"G") == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    reader = asyncio.StreamReader()
    reader.feed_data(b"\n")
    with pytest.raises(HeadError) as refused:
        await read_head(reader, b"\r")
    assert refused.value.reason == "empty request"
