"""Config layers: defaults < TOML < environment < flags; keys generated once, owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from livechannel.config import ConfigError, HlsConfig, Listen, ensure_credentials, load
from livechannel.store.base import Acl, SegmentFormat


def test_defaults() -> None:
    cfg = load(None, {}, {})
    assert cfg.rtmp_listen == Listen("0.0.0.0", 1935)
    assert cfg.http_listen == Listen("0.0.0.0", 8080)
    assert cfg.default_bucket == "live" and cfg.buckets[0].acl == Acl.PRIVATE
    assert cfg.data_dir == Path("data")


def test_layers_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'data_dir = "/srv/a"\nrtmp_listen = "127.0.0.1:1000"\nhttp_listen = "127.0.0.1:2000"\n'
        '[[buckets]]\nname = "tv"\nacl = "public-read"\n[buckets.storage]\ndirect_io = false\n'
        '[[access_keys]]\nid = "K1"\nsecret = "S1"\n[limits]\nidle_timeout_s = 5\n'
    )
    env = {
        "LIVECHANNEL_RTMP_LISTEN": "127.0.0.1:1001",
        "LIVECHANNEL_BUCKET_ACL": "private",
        "LIVECHANNEL_ACCESS_KEY_ID": "K2",
        "LIVECHANNEL_ACCESS_KEY_SECRET": "S2",
    }
    cfg = load(str(toml), env, {"http_listen": "[::1]:3000", "data_dir": None})
    assert cfg.data_dir == Path("/srv/a")  # TOML; flag None means "not given"
    assert cfg.rtmp_listen.port == 1001  # env beats TOML
    assert cfg.http_listen == Listen("::1", 3000)  # flag beats everything
    assert cfg.buckets[0].name == "tv" and cfg.buckets[0].acl == Acl.PRIVATE
    assert cfg.buckets[0].storage == {"direct_io": False}  # the ACL from env kept the table
    assert dict(cfg.access_keys) == {"K2": "S2"}
    assert cfg.limits.idle_timeout_s == 5


@pytest.mark.parametrize(
    ("env", "flags", "toml", "message"),
    [
        ({}, {"rtmp_listen": "nope"}, "", "expected HOST:PORT"),
        ({}, {"bucket_acl": "open"}, "", "expected one of"),
        ({"LIVECHANNEL_ACCESS_KEY_ID": "x"}, {}, "", "set both"),
        ({}, {"workers": "0"}, "", "at least 1"),
        ({}, {}, "colour = 1\n", "unknown configuration keys"),
        ({}, {}, "[limits]\nfoo = 1\n", "unknown limits"),
        ({}, {}, "this is not toml", "config file"),
    ],
)
def test_errors_name_the_value(
    tmp_path: Path, env: dict[str, str], flags: dict[str, str], toml: str, message: str
) -> None:
    path = None
    if toml:
        path = tmp_path / "c.toml"
        path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load(str(path) if path else None, env, flags)


def test_generated_credentials_are_kept_and_owner_only(tmp_path: Path) -> None:
    cfg = load(None, {}, {"data_dir": str(tmp_path / "d")})
    first = ensure_credentials(cfg)
    key_file = tmp_path / "d" / "credentials.json"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = ensure_credentials(cfg)
    assert dict(first.access_keys) == dict(second.access_keys)
    assert len(next(iter(first.access_keys.values()))) >= 30


def test_store_url_from_each_layer(tmp_path: Path) -> None:
    assert load(None, {}, {}).store == ""  # the SQLite file in the data directory
    toml = tmp_path / "c.toml"
    toml.write_text('store = "sqlite:///var/lib/lc/meta.db"\n')
    assert load(str(toml), {}, {}).store == "sqlite:///var/lib/lc/meta.db"
    env = {"LIVECHANNEL_STORE": "postgresql://lc:pw@db:5432/lc"}
    assert load(str(toml), env, {}).store == "postgresql://lc:pw@db:5432/lc"
    flags = {"store": "postgres://db/lc"}
    assert load(str(toml), env, flags).store == "postgres://db/lc"


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/x", "sqlite://relative.db", "/x.db"])
def test_bad_store_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match="store") as e:
        load(None, {}, {"store": url})
    assert "hunter2" not in str(e.value)


def test_bucket_hls_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[buckets]]\nname = "tv"\n[buckets.hls]\nsegment_format = "fmp4"\n')
    cfg = load(str(path), {}, {})
    assert cfg.buckets[0].hls == HlsConfig(SegmentFormat.FMP4, 0.0)
    assert cfg.bucket("tv") is cfg.buckets[0] and cfg.bucket("other") is None
    assert load(None, {}, {}).buckets[0].hls.segment_format is SegmentFormat.TS
    for bad, message in (
        ('segment_format = "mkv"', "expected ts or fmp4"),
        ("part_duration_s = 0.5", "need segment_format = fmp4"),
        ('segment_format = "fmp4"\npart_duration_s = -1', "0..5 seconds"),
        ("colour = 1", "unknown keys"),
    ):
        path.write_text(f'[[buckets]]\nname = "tv"\n[buckets.hls]\n{bad}\n')
        with pytest.raises(ConfigError, match=message):
            load(str(path), {}, {})


def test_region_for_v4_signatures_from_toml_env_and_flag(tmp_path: Path) -> None:
    assert load(None, {}, {}).region == "cn-hangzhou"
    toml = tmp_path / "region.toml"
    toml.write_text('region = "us-west-1"\n')
    assert load(str(toml), {}, {}).region == "us-west-1"
    assert load(str(toml), {"LIVECHANNEL_REGION": "eu-central-1"}, {}).region == "eu-central-1"
    flags = {"region": "ap-southeast-1"}
    assert load(str(toml), {"LIVECHANNEL_REGION": "x"}, flags).region == "ap-southeast-1"
    with pytest.raises(ConfigError, match="region"):
        load(None, {"LIVECHANNEL_REGION": "oss cn/hangzhou"}, {})


def test_proxy_protocol_listeners(tmp_path: Path) -> None:
    assert load(None, {}, {}).proxy_protocol == frozenset()
    both = frozenset({"rtmp", "http"})
    assert load(None, {}, {"proxy_protocol": "all"}).proxy_protocol == both  # bare flag
    assert load(None, {"LIVECHANNEL_PROXY_PROTOCOL": "rtmp"}, {}).proxy_protocol == {"rtmp"}
    toml = tmp_path / "c.toml"
    toml.write_text("proxy_protocol = true\n")
    assert load(str(toml), {}, {}).proxy_protocol == both
    toml.write_text('proxy_protocol = ["http"]\n')
    assert load(str(toml), {}, {}).proxy_protocol == {"http"}
    assert load(str(toml), {}, {"proxy_protocol": "false"}).proxy_protocol == frozenset()
    with pytest.raises(ConfigError, match="proxy_protocol"):
        load(None, {}, {"proxy_protocol": "rtmp,ftp"})


def test_advertise_url_is_an_origin(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('advertise_url = "http://node-a.example.com:8080/"\n')
    assert load(str(toml), {}, {}).advertise_url == "http://node-a.example.com:8080"
    env = {"LIVECHANNEL_ADVERTISE_URL": "https://10.0.0.2"}
    assert load(None, env, {}).advertise_url == "https://10.0.0.2"
    assert load(None, {}, {}).advertise_url == ""
    for bad in ("node-a:8080", "ftp://a", "http://a/live", "http://a?x=1", "http://u@a",
                "http://a:99999"):  # fmt: skip
        with pytest.raises(ConfigError, match="advertise_url"):
            load(None, {}, {"advertise_url": bad})
