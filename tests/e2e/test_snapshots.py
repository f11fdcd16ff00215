"""Snapshots end to end, on local storage and on S3 (moto): channels created through a URL
signed by the real oss2 SDK with a Snapshot config (oss2 has no Snapshot field), real ffmpeg
publishers, and the JPEGs listed with oss2 and decoded by PyAV."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import av
import oss2
import pytest

from bench.servers import put_channel_with_snapshot
from livechannel.config import BucketConfig
from livechannel.store.base import Acl
from tests.support import publishers
from tests.support.moto import MotoServer
from tests.support.service import ServiceThread

SNAPS = "snaps"
PUSH_S = 9
GOP_S = 2


def put_channel(bucket: oss2.Bucket, channel: str, interval_s: int, dest: str = "") -> int:
    """PutLiveChannel (FragDuration 2, FragCount 3) with a Snapshot; the HTTP status."""
    return put_channel_with_snapshot(
        bucket, channel, frag_duration_s=2, frag_count=3, interval_s=interval_s, dest=dest
    ).status_code


def snapshots(bucket: oss2.Bucket, channel: str) -> list[tuple[int, bytes]]:
    found = []
    for info in oss2.ObjectIterator(bucket, prefix=f"{channel}/"):
        if info.key.endswith(".jpg"):
            ms = int(info.key.rsplit("/", 1)[1].removesuffix(".jpg"))
            found.append((ms, bucket.get_object(info.key).read()))
    return sorted(found)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_snapshots_land_in_the_dest_bucket_one_per_interval_with_a_keyframe(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    storage: dict[str, object] = {}
    snaps_storage: dict[str, object] = {}
    if backend == "s3":  # both buckets on S3 (moto), each in an S3 bucket of its own
        moto: MotoServer = request.getfixturevalue("moto")
        storage, snaps_storage = (moto.storage_table(moto.new_bucket()) for _ in range(2))
    extra = (BucketConfig(SNAPS, Acl.PRIVATE, snaps_storage),)
    with ServiceThread(
        tmp_path / "data", storage=storage or None, extra_buckets=extra
    ).start() as service:
        live = service.bucket()
        assert put_channel(live, "nosuch", 1, "not-a-bucket") == 400
        # Interval 1 < GOP: a snapshot per keyframe, into another bucket.
        assert put_channel(live, "every", 1, SNAPS) == 200
        # Interval 4 > GOP, DestBucket empty: every other keyframe, into the channel's bucket.
        assert put_channel(live, "sparse", 4) == 200
        pubs = [
            publishers.start(
                publishers.ffmpeg_live(
                    service.signed_publish_url(name), duration_s=PUSH_S, gop_s=GOP_S
                )
            )
            for name in ("every", "sparse")
        ]
        try:
            for pub in pubs:
                pub.wait(timeout=PUSH_S + 20)
                assert pub.returncode == 0, publishers.stop(pub)
        finally:
            for pub in pubs:
                publishers.stop(pub)
        service.wait_idle("every")
        service.wait_idle("sparse")

        every = snapshots(service.bucket(SNAPS), "every")
        sparse = snapshots(live, "sparse")
        assert snapshots(live, "every") == []  # nothing in the channel's own bucket
        # Keyframes at 0, 2, 4, 6, 8 s of media time (ffmpeg -re: arrival follows).
        assert len(every) == PUSH_S // GOP_S + 1, [ms for ms, _ in every]
        assert len(sparse) == 3, [ms for ms, _ in sparse]  # windows [0,4) [4,8) [8,12)
        gaps_ms = [b - a for (a, _), (b, _) in itertools.pairwise(every)]
        assert all(1_000 < gap < 3_000 for gap in gaps_ms), gaps_ms
        for _, jpeg in every + sparse:
            picture = next(av.open(io.BytesIO(jpeg)).decode(video=0))
            assert (picture.width, picture.height) == (640, 360)
        # FragDuration = GOP: every keyframe starts a segment, and a snapshot is named like
        # the segment it starts (the keyframe's arrival), so the two sort side by side.
        segments = {
            int(o.key.rsplit("/", 1)[1].removesuffix(".ts"))
            for o in oss2.ObjectIterator(live, prefix="every/")
            if o.key.endswith(".ts")
        }
        assert {ms for ms, _ in every} <= segments, ([ms for ms, _ in every], sorted(segments))
