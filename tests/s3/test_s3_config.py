"""S3 settings the AWS way (table, then environment, then ~/.aws files), the factory's
per-bucket options, and errors: only ConfigError from configuration, only StorageError from
an unreachable store."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.config import BucketConfig, ConfigError
from livechannel.errors import NoSuchKey, StorageError
from livechannel.storage.factory import bucket_policy, make_storage
from livechannel.storage.local import LocalStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import DEFAULT_REGION, s3_settings


def aws_home(tmp_path: Path) -> Path:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n"
        "[ops]\naws_access_key_id = OPSKEY\naws_secret_access_key = opssecret\n"
        "aws_session_token = opstoken\n"
    )
    (tmp_path / ".aws" / "config").write_text(
        "[default]\nregion = eu-west-1\n[profile ops]\nregion = ap-southeast-1\n"
    )
    return tmp_path


def test_table_wins_then_environment_then_files(tmp_path: Path) -> None:
    home = aws_home(tmp_path)
    env = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
           "AWS_REGION": "us-west-2"}  # fmt: skip
    table = {"bucket": "b", "access_key_id": "TABLEKEY", "secret_access_key": "s", "region": "r"}
    s = s3_settings("t", table, env, home)
    assert (s.access_key_id, s.secret_access_key, s.region) == ("TABLEKEY", "s", "r")
    s = s3_settings("t", {"bucket": "b"}, env, home)
    assert (s.access_key_id, s.secret_access_key, s.region) == ("ENVKEY", "envsecret", "us-west-2")
    s = s3_settings("t", {"bucket": "b"}, {}, home)
    assert (s.access_key_id, s.secret_access_key, s.region) == (
        "FILEKEY",
        "filesecret",
        "eu-west-1",
    )
    s = s3_settings("t", {"bucket": "b"}, {"AWS_PROFILE": "ops"}, home)
    assert (s.access_key_id, s.session_token, s.region) == ("OPSKEY", "opstoken", "ap-southeast-1")
    s = s3_settings("t", {"bucket": "b", "profile": "ops"}, {"AWS_PROFILE": "default"}, home)
    assert s.access_key_id == "OPSKEY"
    s = s3_settings("t", {"bucket": "b"}, {}, None)  # no files, nothing set
    assert (s.access_key_id, s.region) == ("", DEFAULT_REGION)
    assert "filesecret" not in repr(s3_settings("t", {"bucket": "b"}, {}, home))


def test_explicit_aws_file_variables(tmp_path: Path) -> None:
    home = aws_home(tmp_path)
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
           "AWS_CONFIG_FILE": str(home / ".aws" / "config")}  # fmt: skip
    s = s3_settings("t", {"bucket": "b"}, env, None)
    assert (s.access_key_id, s.region) == ("FILEKEY", "eu-west-1")


def test_endpoint_and_addressing_style() -> None:
    aws = s3_settings("t", {"bucket": "b"}, {}, None)
    assert (aws.endpoint, aws.virtual_hosted, aws.allow_http) == ("", True, False)
    minio = s3_settings("t", {"bucket": "b", "endpoint": "http://minio:9000/"}, {}, None)
    assert (minio.endpoint, minio.virtual_hosted, minio.allow_http) == (
        "http://minio:9000", False, True)  # fmt: skip
    oss = s3_settings(
        "t",
        {"bucket": "b", "endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
         "addressing_style": "virtual"},
        {},
        None,
    )  # fmt: skip
    assert oss.virtual_hosted and not oss.allow_http
    from_env = s3_settings("t", {"bucket": "b"}, {"AWS_ENDPOINT_URL": "https://r2.example"}, None)
    assert from_env.endpoint == "https://r2.example" and not from_env.virtual_hosted
    assert s3_settings("t", {"bucket": "b", "prefix": "/a/b/"}, {}, None).prefix == "a/b"


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"bucket": ""},
        {"bucket": "b", "bogus": 1},
        {"bucket": "b", "addressing_style": "dns"},
        {"bucket": "b", "endpoint": "minio:9000"},
        {"bucket": "b", "access_key_id": "only-half"},
        {"bucket": "b", "read_timeout_s": 0},
        {"bucket": "b", "read_timeout_s": True},
        {"bucket": "b", "max_retries": -1},
        {"bucket": "b", "prefix": "a/../b"},
        {"bucket": 3},
    ],
)
def test_bad_tables_are_config_errors(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        s3_settings("buckets.live.storage", table, {}, None)


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                   st.lists(st.integers(), max_size=2))  # fmt: skip
keys = st.sampled_from(["bucket", "endpoint", "region", "prefix", "addressing_style", "profile",
                        "access_key_id", "secret_access_key", "session_token", "read_timeout_s",
                        "max_retries", "retry_timeout_s", "public_base_url", "retention_hours",
                        "type", "root", "x"])  # fmt: skip


@given(st.dictionaries(keys, values, max_size=6))
def test_any_table_gives_settings_or_config_error(table: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        s3_settings("t", table, {}, None)
    with contextlib.suppress(ConfigError):
        bucket_policy(BucketConfig("live", storage=table))


def test_factory_policy_and_backends(tmp_path: Path) -> None:
    policy = bucket_policy(BucketConfig("live", storage={
        "public_base_url": "https://cdn.example.com/live/", "retention_hours": 48}))  # fmt: skip
    assert (policy.public_base_url, policy.retention_hours) == ("https://cdn.example.com/live", 48)
    assert bucket_policy(BucketConfig("live")).retention_hours is None
    for bad in (
        {"public_base_url": "cdn.example.com"},
        {"retention_hours": 0},
        {"retention_hours": "48"},
        {"type": "local", "bucket": "x"},
        {"type": "ftp"},
    ):
        with pytest.raises(ConfigError):
            make_storage(BucketConfig("live", storage=bad), tmp_path)  # fmt: skip
    local = make_storage(BucketConfig("live", storage={"retention_hours": 1}), tmp_path)
    assert isinstance(local, LocalStorage) and local.root == str(tmp_path / "buckets" / "live")
    s3 = make_storage(BucketConfig("live", storage={"type": "s3", "bucket": "b"}), tmp_path)
    assert isinstance(s3, S3Storage)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_store_raises_storage_error_only() -> None:
    table = {"bucket": "b", "endpoint": f"http://127.0.0.1:{dead_port()}", "access_key_id": "k",
             "secret_access_key": "s", "max_retries": 0, "connect_timeout_s": 1}  # fmt: skip
    storage = S3Storage(s3_settings("t", table, {}, None))
    try:
        with pytest.raises(StorageError) as e:
            await storage.put("c/1.ts", b"x", "")
        assert not e.value.permanent and "S3 cannot write 'c/1.ts'" in str(e.value)
        assert "\n" not in str(e.value)  # one log line, not obstore's debug dump
        for call in (storage.head("c/1.ts"), storage.get("c/1.ts"), storage.delete("c/1.ts"),
                     storage.list("", "", 10), storage.get("c/1.ts", 5, 9)):  # fmt: skip
            with pytest.raises(StorageError):
                await call
    finally:
        await storage.close()


async def test_missing_bucket_is_a_storage_error_not_a_missing_key(moto: Any) -> None:
    storage = S3Storage(s3_settings("t", moto.storage_table("no-such-bucket-here"), {}, None))
    try:
        with pytest.raises(StorageError):
            await storage.put("c/1.ts", b"x", "")
        assert await storage.head("c/1.ts") is None  # S3 answers 404 either way
        with pytest.raises(NoSuchKey):
            await storage.get("c/1.ts")
    finally:
        await storage.close()
