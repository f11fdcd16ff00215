"""The first-run choices, without a server: which configuration pins a bucket's ACL, which host
the printed URLs carry, and what the banner prints to a terminal and to a log."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from livechannel import cli
from livechannel.auth.urls import ServiceUrls
from livechannel.config import Config, ConfigError, Listen, load
from livechannel.firstrun import banner, host_note, own_address, with_reachable_domain
from livechannel.server import Running
from livechannel.store.base import Acl


def test_an_acl_is_configured_only_when_some_layer_sets_it(tmp_path: Path) -> None:
    assert not load(None, {}, {}).buckets[0].acl_configured
    assert load(None, {}, {"bucket_acl": "private"}).buckets[0].acl_configured
    assert load(None, {"LIVECHANNEL_BUCKET_ACL": "public-read"}, {}).buckets[0].acl_configured
    assert not load(None, {"LIVECHANNEL_BUCKET": "tv"}, {}).buckets[0].acl_configured
    toml = tmp_path / "c.toml"
    toml.write_text('[[buckets]]\nname = "a"\nacl = "private"\n[[buckets]]\nname = "b"\n')
    a, b = load(str(toml), {}, {}).buckets
    assert a.acl_configured and not b.acl_configured
    # A flag on top of a TOML bucket without an ACL pins it; renaming alone does not.
    toml.write_text('[[buckets]]\nname = "a"\n')
    assert not load(str(toml), {}, {"bucket": "z"}).buckets[0].acl_configured
    assert load(str(toml), {}, {"bucket_acl": "private"}).buckets[0].acl_configured


def test_the_domain_is_ours_to_choose_only_when_not_configured() -> None:
    address = own_address()
    every = load(None, {}, {})  # listens on 0.0.0.0
    assert with_reachable_domain(every).domain == (address or "127.0.0.1")
    named = load(None, {}, {"domain": "live.example.com"})
    assert with_reachable_domain(named).domain == "live.example.com"
    local = load(None, {}, {"http_listen": "127.0.0.1:8080"})
    assert with_reachable_domain(local).domain == "127.0.0.1"
    assert "works from this machine only" in host_note(local)
    assert host_note(named) == ""
    if address is not None:
        assert "is this machine's address" in host_note(with_reachable_domain(every))
    with pytest.raises(ConfigError, match="unknown configuration keys"):
        load(None, {}, {"domain_configured": True})  # not a setting


def running(acl: Acl) -> Running:
    urls = ServiceUrls("127.0.0.1", 1935, 8080)
    return Running(1935, 8080, urls, cast(Any, None), {"live": acl})


CFG = replace(Config(), access_keys={"KEYID": "the-secret"}, http_listen=Listen("127.0.0.1", 0))


@pytest.mark.parametrize("acl", list(Acl))
def test_signed_urls_reach_a_terminal_only(acl: Acl) -> None:
    to_log = banner(CFG, running(acl), show_urls=False, secret_at="X")
    to_terminal = banner(CFG, running(acl), show_urls=True, secret_at="X")
    assert "the-secret" not in to_log + to_terminal
    assert f"(ACL {acl.value})" in to_log  # the ACL in force, not the configured one
    assert "Signature=" not in to_log
    if acl == Acl.PUBLIC_READ_WRITE:  # nothing to hide: unsigned URLs are printed
        assert "ffmpeg -re" in to_log
    else:
        assert "livechannel url demo" in to_log and "ffmpeg -re" not in to_log
        assert "rtmp://127.0.0.1/live/live/demo?OSSAccessKeyId=KEYID&Expires=" in to_terminal
    assert ("hls%2Fsign" in to_terminal) == (acl == Acl.PRIVATE)


def test_demo_channel_off_by_flag() -> None:
    args = cli.parser().parse_args(["serve", "--demo-channel", ""])
    cfg = replace(load(None, {}, cli.config_flags(args)), access_keys={"KEYID": "the-secret"})
    assert cfg.demo_channel == ""
    text = banner(cfg, running(Acl.PRIVATE), show_urls=True, secret_at="X")
    assert "livechannel channel create NAME" in text and "'demo'" not in text
    assert "ffmpeg" not in text


def test_admin_commands_say_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "none")]
    # No key anywhere: refused, and no key is made up (the service would not know it).
    assert cli.main(["channel", "list", *data]) == 2
    assert "no access key" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    # A key, but no service at the endpoint.
    monkeypatch.setenv("LIVECHANNEL_ACCESS_KEY_ID", "K")
    monkeypatch.setenv("LIVECHANNEL_ACCESS_KEY_SECRET", "S")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert cli.main(["url", "cam", "--endpoint", endpoint, *data]) == 1
    assert f"cannot reach the service at {endpoint}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["url", "cam", "--expires", "1y", *data])
    assert "expected a duration like 30d" in capsys.readouterr().err
