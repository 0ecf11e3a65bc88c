"""The remote check's sentence for S3's NoSuchBucket, which the real store of tests/stages/test_s3_remote.py never
answers (SeaweedFS scopes each identity's rights to its bucket, so a bucket that does not exist is AccessDenied to
the writer and the reader alike); AWS S3 answers NoSuchBucket to any signed request for one."""
from __future__ import annotations

import pytest

from pipeline.ops.remote import _explain


def test_no_such_bucket_through_s3fs_is_one_sentence():
    errors = pytest.importorskip("s3fs.errors")  # dvc-s3's (requirements-remote.txt)
    from botocore.exceptions import ClientError

    answer = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"}},
                         "ListObjectsV2")
    raised = errors.translate_boto_error(answer)  # what s3fs raises: a FileNotFoundError caused by the answer
    assert isinstance(raised, FileNotFoundError)
    assert _explain(raised, "shared", "s3://gone/speech2face", "http://127.0.0.1:9000", 10.0) == (
        "DVC remote 'shared' (s3://gone/speech2face at http://127.0.0.1:9000) has no bucket gone (S3 NoSuchBucket): "
        "create it, or fix the remote's URL")
