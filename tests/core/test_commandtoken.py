"""The per-terminal token of vibebox commands (vibebox_core.commandtoken) and who sends it."""

from __future__ import annotations

from typing import Any

import pytest

from vibebox_core import commandtoken
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.streams import MemoryStream, command_token


def test_tokens_are_fresh_128_bit_hex() -> None:
    tokens = {commandtoken.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(commandtoken.is_token(t) and len(t) == 32 for t in tokens)


@pytest.mark.parametrize(
    "value", ["", "0" * 31, "0" * 33, "G" * 32, "A" * 32, "0" * 31 + "\n", None, 5]
)
def test_only_32_lowercase_hex_digits_are_a_token(value: object) -> None:
    assert not commandtoken.is_token(value)


def test_matches_needs_the_exact_token_and_an_expected_one() -> None:
    token = commandtoken.new_token()
    assert commandtoken.matches(token, token)
    assert not commandtoken.matches(token, token[:-1])
    assert not commandtoken.matches(token, token.upper())
    assert not commandtoken.matches(token, "")
    assert not commandtoken.matches("", "")  # a stream without a token accepts nothing
    assert not commandtoken.matches(None, token)
    assert not commandtoken.matches("short", "short")
    assert not commandtoken.matches(token, token + "\udcff")  # undecodable bytes: no match


class _Conn:
    """Records what SSHPtyStream.open asks asyncssh for."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    async def create_process(self, command: str | None, **kwargs: Any) -> object:
        self.kwargs = kwargs
        return object()


async def test_a_pty_sends_a_fresh_token_in_its_environment() -> None:
    conn = _Conn()
    stream = await SSHPtyStream.open(conn, 80, 24, env={"LANG": "C.UTF-8"})  # type: ignore[arg-type]
    token = command_token(stream)
    assert commandtoken.is_token(token)
    assert conn.kwargs["env"] == {"LANG": "C.UTF-8", commandtoken.ENV_NAME: token}
    other = await SSHPtyStream.open(conn, 80, 24)  # type: ignore[arg-type]
    assert command_token(other) != token  # per PTY, never shared
    given = commandtoken.new_token()
    chosen = await SSHPtyStream.open(conn, 80, 24, command_token=given)  # type: ignore[arg-type]
    assert command_token(chosen) == given
    bad = await SSHPtyStream.open(conn, 80, 24, command_token="x\n; evil")  # type: ignore[arg-type]
    assert commandtoken.is_token(command_token(bad)) and conn.kwargs["env"][
        commandtoken.ENV_NAME
    ] == command_token(bad)


def test_memory_streams_have_a_token_and_other_streams_none() -> None:
    assert commandtoken.is_token(command_token(MemoryStream()))
    assert command_token(object()) == ""  # type: ignore[arg-type]
