"""Playlist names the storage refuses are refused up front, with the storage's own rule
(livechannel.storage.keys.check_file_name): at PutLiveChannel and PostVodPlaylist (400
InvalidArgument) and at publish (an onStatus error saying why). They used to be accepted:
the publisher was kicked after its first segment, an orphan segment stayed behind and the
log filled with tracebacks."""

from __future__ import annotations

from collections.abc import Iterator

import oss2
import pytest

from tests.robustness.rtmp_session import RtmpSession, url_parts
from tests.support.service import ServiceThread, create_channel

RESERVED = ".livechannel-tmp-x.m3u8"  # the local store's temp-file namespace
TOO_LONG = "中" * 86 + ".m3u8"  # 91 characters (OSS allows 128), 263 bytes (a file name: 255)
UNSTORABLE = [RESERVED, TOO_LONG]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    with ServiceThread(tmp_path_factory.mktemp("names") / "data").start() as svc:
        yield svc


@pytest.mark.parametrize("name", UNSTORABLE, ids=["reserved", "over-255-bytes"])
def test_put_live_channel_refuses_an_unstorable_playlist_name(
    service: ServiceThread, name: str
) -> None:
    with pytest.raises(oss2.exceptions.InvalidArgument) as e:
        create_channel(service.bucket(), "cam-put", playlist=name)
    assert "cannot be stored" in e.value.message
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        service.bucket().get_live_channel("cam-put")  # nothing was created


def test_post_vod_playlist_refuses_an_unstorable_name(service: ServiceThread) -> None:
    create_channel(service.bucket(), "cam-vod")
    with pytest.raises(oss2.exceptions.InvalidArgument):
        service.bucket().post_vod_playlist("cam-vod", RESERVED, 1_700_000_000, 1_700_000_060)


@pytest.mark.parametrize("name", UNSTORABLE, ids=["reserved", "over-255-bytes"])
def test_publish_with_an_unstorable_playlist_name_is_refused_with_the_reason(
    service: ServiceThread, name: str
) -> None:
    channel = "cam-rtmp"
    create_channel(service.bucket(), channel)
    url = service.signed_publish_url(channel, playlist=name, rtmp_port=True)
    port, app, stream, tc_url = url_parts(url)
    with RtmpSession(port, app, stream, tc_url=tc_url) as s:
        status = s.publish()
        assert status.level == "error", status
        assert "playlist name cannot be stored" in status.description
        s.wait_closed(5.0)
    assert service.call(service.store.live_push("live", channel)) is None
    assert not list((service.config.data_dir / "buckets" / "live").glob(f"{channel}/*"))
