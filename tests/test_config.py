"""A wrong config stops start-up with one message naming the file, the key and the fix."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import SPECS
from relay.config import ConfigError, Secret, load_config, settings_from_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "relay.example.toml").read_text()
LIVE_EXAMPLE = EXAMPLE.replace("dry_run = true\n", "")
ALL_SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cr3t-signing",
    "X_API_KEY": "k",
    "X_API_SECRET": "ks",
    "X_ACCESS_TOKEN": "t",
    "X_ACCESS_TOKEN_SECRET": "ts",
}

ISSUE_EXAMPLE = """
[policy]
leaders = ["slack:U0LEAD"]
approvers = []            # when not empty, someone from this list other than the leader must approve
default_audience = "everyone"

[destinations.all-staff]
kind = "slack"
channel = "C0STAFF"

[destinations.company-x]
kind = "x"

[audiences]
staff = ["all-staff"]
public = ["company-x"]
everyone = ["all-staff", "company-x"]
"""


def load(text: str, tmp_path: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "relay.toml"
    path.write_text(text)
    settings = settings_from_env({"RELAY_CONFIG": str(path), **(ALL_SECRETS if env is None else env)})
    return load_config(settings, SPECS)


def test_the_documented_example_loads_as_written(tmp_path: Path) -> None:
    config = load(ISSUE_EXAMPLE, tmp_path)
    assert config.policy.leaders == {"slack:U0LEAD"}
    assert [d.name for d in config.audience("everyone")] == ["all-staff", "company-x"]
    assert config.destinations["all-staff"].options == {"channel": "C0STAFF"}
    assert not config.dry_run and not any(d.dry_run for d in config.destinations.values())


def test_the_bundled_example_is_the_documented_one_plus_dry_run(tmp_path: Path) -> None:
    config = load(EXAMPLE, tmp_path, env={})
    assert config.dry_run and all(d.dry_run for d in config.destinations.values())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("[destinations.company-x]", "[destinations.company-twitter]"),
            "audiences.public: 'company-x' is not a destination; did you mean 'company-twitter'?",
        ),
        (
            ('leaders = ["slack:U0LEAD"]', 'leaders = ["U0LEAD"]'),
            "policy.leaders[0]: 'U0LEAD' needs its platform: write 'slack:U0LEAD'",
        ),
        (('leaders = ["slack:U0LEAD"]', 'leaders = ["@alice"]'), "policy.leaders[0]: '@alice' is not a stable id"),
        (("approvers = []", "aprovers = []"), "policy.aprovers: unknown key; did you mean 'approvers'?"),
        (
            ('channel = "C0STAFF"', 'channel = "#general"'),
            "destinations.all-staff.channel: '#general' is not a Slack channel ID",
        ),
        (
            ('kind = "x"', 'kind = "twitter"'),
            "destinations.company-x.kind: 'twitter' is not a destination kind; use one of "
            '"bluesky", "linkedin", "mastodon", "slack", "teams", "threads", "x"',
        ),
        (
            ('default_audience = "everyone"', 'default_audience = "all"'),
            "policy.default_audience: 'all' is not an audience",
        ),
        (
            ('channel = "C0STAFF"', 'chanel = "C0STAFF"'),
            "destinations.all-staff.chanel: unknown key; did you mean 'channel'?",
        ),
        (('leaders = ["slack:U0LEAD"]', "leaders = []"), "policy.leaders: is empty: nobody could broadcast"),
        (('staff = ["all-staff"]', "staff = []"), "audiences.staff: must be a non-empty list of destination names"),
        (("[policy]", "[polcy]"), "polcy: unknown key; did you mean 'policy'?"),
        (("approvers = []", "approvers = []\npending_hours = -1"), "policy.pending_hours: must be a number of hours"),
        (("[audiences]", "[audiences\n"), "relay.toml: not valid TOML"),
    ],
)
def test_each_config_mistake_is_named_with_its_fix(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    broken = ISSUE_EXAMPLE.replace(*change)
    assert broken != ISSUE_EXAMPLE
    with pytest.raises(ConfigError) as raised:
        load(broken, tmp_path)
    assert expected in str(raised.value)
    assert str(raised.value).startswith("relay.toml: ")


def test_missing_credentials_name_the_variables_and_the_way_out(tmp_path: Path) -> None:
    env = {k: v for k, v in ALL_SECRETS.items() if not k.startswith("X_ACCESS")}
    with pytest.raises(ConfigError) as raised:
        load(ISSUE_EXAMPLE, tmp_path, env)
    assert str(raised.value) == (
        "relay.toml: destinations.company-x: needs X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET in the environment; "
        "set them, or set dry_run = true on this destination to render and record without posting"
    )


def test_a_dry_destination_needs_no_credentials(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace('kind = "x"', 'kind = "x"\ndry_run = true')
    config = load(text, tmp_path, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"})
    assert config.destinations["company-x"].dry_run and not config.destinations["all-staff"].dry_run


def test_a_missing_config_file_named_by_relay_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"RELAY_CONFIG=.*nope\.toml: no such file"):
        settings_from_env({"RELAY_CONFIG": str(tmp_path / "nope.toml")})


def test_secrets_never_show_in_repr() -> None:
    settings = settings_from_env({**ALL_SECRETS, "RELAY_CONFIG": str(ROOT / "relay.example.toml")})
    shown = repr(settings) + str(settings.secret("SLACK_SIGNING_SECRET")) + f"{Secret('abc')}"
    assert "s3cr3t-signing" not in shown and "xoxb-1" not in shown and "abc" not in shown


def run_bot(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "RELAY_DB": str(tmp_path / "relay.db"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_bot_refuses_to_start_on_a_wrong_config_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(ISSUE_EXAMPLE.replace("approvers = []", "aprovers = []"))
    result = run_bot(tmp_path, {"RELAY_CONFIG": str(path), **ALL_SECRETS})
    assert result.returncode == 2
    assert "relay.toml: policy.aprovers: unknown key; did you mean 'approvers'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "relay.db").exists(), "nothing was created"


def test_the_bot_refuses_to_start_live_without_slack_credentials(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        ISSUE_EXAMPLE.replace('kind = "x"', 'kind = "x"\ndry_run = true').replace(
            'channel = "C0STAFF"', 'channel = "C0STAFF"\ndry_run = true'
        )
    )
    result = run_bot(tmp_path, {"RELAY_CONFIG": str(path)})
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET must be set to receive /broadcast" in result.stderr


def test_people_join_a_persons_ids_across_platforms(tmp_path: Path) -> None:
    teams = "teams:00000000-0000-0000-0000-0000000000c0"
    text = ISSUE_EXAMPLE.replace("[policy]", f'[people]\nceo = ["slack:U0LEAD", "{teams}"]\n\n[policy]')
    config = load(text, tmp_path)
    assert teams in config.policy.leaders
    assert config.policy.same_person(teams, "slack:U0LEAD")


def test_an_id_given_to_two_people_is_refused(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("[policy]", '[people]\na = ["slack:U0LEAD"]\nb = ["slack:U0LEAD"]\n\n[policy]')
    with pytest.raises(ConfigError, match="slack:U0LEAD is already someone else's id"):
        load(text, tmp_path)


def test_a_second_account_names_its_own_variables(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace(
        "[audiences]",
        '[destinations.ceo-x]\nkind = "x"\naccess_token_env = "CEO_X_TOKEN"\n'
        'access_token_secret_env = "CEO_X_SECRET"\n\n[audiences]',
    )
    with pytest.raises(ConfigError) as raised:
        load(text, tmp_path)
    assert "destinations.ceo-x: needs CEO_X_TOKEN, CEO_X_SECRET in the environment" in str(raised.value)
    config = load(text, tmp_path, {**ALL_SECRETS, "CEO_X_TOKEN": "t2", "CEO_X_SECRET": "s2"})
    assert config.destinations["ceo-x"].env["access_token"] == "CEO_X_TOKEN"
    assert config.destinations["company-x"].env["access_token"] == "X_ACCESS_TOKEN"


def test_reply_policy_defaults_from_policy_and_is_checked(tmp_path: Path) -> None:
    from relay.config import Replies

    text = ISSUE_EXAMPLE.replace("[policy]", '[policy]\nreplies = "none"')
    assert load(text, tmp_path).destinations["company-x"].replies is Replies.NONE
    text = text.replace('kind = "x"', 'kind = "x"\nreplies = "open"')
    assert load(text, tmp_path).destinations["company-x"].replies is Replies.OPEN
    with pytest.raises(ConfigError, match=r"policy\.replies: 'closed' is not a reply policy"):
        load(ISSUE_EXAMPLE.replace("[policy]", '[policy]\nreplies = "closed"'), tmp_path)
    with pytest.raises(ConfigError, match=r"destinations\.all-staff\.replies: unknown key"):
        load(ISSUE_EXAMPLE.replace('channel = "C0STAFF"', 'channel = "C0STAFF"\nreplies = "none"'), tmp_path)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\xef\xbb\xbf" + ISSUE_EXAMPLE.encode(), 'starts with a byte-order mark (saved as "UTF-8 with BOM")'),
        (ISSUE_EXAMPLE.replace("everyone", "tout le monde").encode("latin-1") + b"# caf\xe9\n", "is not UTF-8"),
    ],
    ids=["byte-order-mark", "latin-1"],
)
def test_a_config_file_in_another_encoding_is_named_with_the_fix(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_bytes(content)
    result = run_bot(tmp_path, {"RELAY_CONFIG": str(path), **ALL_SECRETS})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{path}: " in result.stderr and said in result.stderr and "save" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("X_API_URL", "not-a-url", "X_API_URL is not a web address: its scheme is missing"),
        ("X_API_URL", "https://", "X_API_URL is not a web address: it has no valid host"),
        ("MASTODON_URL", "htp:/mastodon.example", "MASTODON_URL is not a web address: its scheme is 'htp:'"),
        ("MASTODON_URL", "javascript:alert(1)", "MASTODON_URL is not a web address: its scheme is 'javascript:'"),
        ("BLUESKY_PDS_URL", "https://bad host/", "BLUESKY_PDS_URL is not a web address: it has no valid host"),
    ],
)
def test_an_endpoint_that_is_not_a_web_address_is_refused_at_start(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    """Set, an address is checked even for a dry destination: it is wrong either way."""
    networks = ISSUE_EXAMPLE + (
        '[destinations.company-mastodon]\nkind = "mastodon"\ndry_run = true\n'
        '[destinations.company-bluesky]\nkind = "bluesky"\nhandle = "company.bsky.social"\ndry_run = true\n'
    )
    env = {**ALL_SECRETS, "MASTODON_URL": "https://mastodon.example", variable: value}
    with pytest.raises(ConfigError) as refused:
        load(networks, tmp_path, env)
    assert said in str(refused.value)


def test_a_port_in_use_is_one_line_naming_it_before_anything_starts(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(ISSUE_EXAMPLE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bot(tmp_path, {"RELAY_CONFIG": str(path), "PORT": str(port), "HOST": "127.0.0.1", **ALL_SECRETS})
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"127.0.0.1:{port} is already in use: stop what listens there, or set PORT to another"
    )
    assert "Traceback" not in result.stderr and "relay ready" not in result.stderr
    assert not (tmp_path / "relay.db").exists(), "nothing was started"
