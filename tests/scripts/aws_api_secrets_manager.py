"""Every Secrets Manager operation the broker answers, through boto3 pointed at
the broker by AWS_ENDPOINT_URL_SECRETS_MANAGER, as OpenMetadata's Python side and
common tools call them. Asserts as it goes; prints the facts the Rust test checks."""
import base64
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError

sm = boto3.client("secretsmanager")
prefix = sys.argv[1]
written_by_v1 = sys.argv[2]


def code(call, **kw):
    try:
        call(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"{call.__name__} did not fail")


# What /v1 wrote is readable here.
assert sm.get_secret_value(SecretId=written_by_v1)["SecretString"] == "from-v1"

# OpenMetadata's server: create with description and tags, update, force delete.
name = f"{prefix}/database/mysql/password"
made = sm.create_secret(
    Name=name,
    Description="This secret was created by OpenMetadata",
    SecretString="first",
    Tags=[{"Key": "team", "Value": "data"}],
)
assert made["Name"] == name and made["ARN"].startswith("arn:aws:secretsmanager:eu-west-1:")
c, m = code(sm.create_secret, Name=name, SecretString="again")
assert c == "ResourceExistsException", (c, m)
assert sm.get_secret_value(SecretId=name)["SecretString"] == "first"
got = sm.get_secret_value(SecretId=made["ARN"])
assert got["SecretString"] == "first" and got["VersionId"] == made["VersionId"], got
assert got["VersionStages"] == ["AWSCURRENT"]
updated = sm.update_secret(
    SecretId=name, Description="This secret was created by OpenMetadata", SecretString="second"
)
assert updated["VersionId"] != made["VersionId"]
assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"
put = sm.put_secret_value(SecretId=name, SecretString="third")
assert put["VersionStages"] == ["AWSCURRENT"]
c, _ = code(sm.get_secret_value, SecretId=name, VersionId=made["VersionId"])
assert c == "ResourceNotFoundException"
c, _ = code(sm.get_secret_value, SecretId=name, VersionStage="AWSPREVIOUS")
assert c == "ResourceNotFoundException"

described = sm.describe_secret(SecretId=name)
assert described["Description"] == "This secret was created by OpenMetadata"
assert described["Tags"] == [{"Key": "team", "Value": "data"}], described
assert list(described["VersionIdsToStages"]) == [put["VersionId"]]
assert described["LastChangedDate"] >= described["CreatedDate"]
sm.tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "ml"}])
sm.untag_resource(SecretId=name, TagKeys=["env"])
assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "team", "Value": "ml"}]

# Unknown secrets.
missing = f"{prefix}/nothing/here"
for call, kw in [
    (sm.get_secret_value, {"SecretId": missing}),
    (sm.describe_secret, {"SecretId": missing}),
    (sm.update_secret, {"SecretId": missing, "SecretString": "x"}),
    (sm.put_secret_value, {"SecretId": missing, "SecretString": "x"}),
    (sm.delete_secret, {"SecretId": missing, "ForceDeleteWithoutRecovery": True}),
    (sm.tag_resource, {"SecretId": missing, "Tags": [{"Key": "a", "Value": "b"}]}),
]:
    c, _ = code(call, **kw)
    assert c == "ResourceNotFoundException", (call.__name__, c)
# Nothing was created by the failed writes.
c, _ = code(sm.get_secret_value, SecretId=missing)
assert c == "ResourceNotFoundException"

# Binary values round trip.
sm.create_secret(Name=f"{prefix}/binary/key", SecretBinary=b"\x00\xff\x10secret")
assert sm.get_secret_value(SecretId=f"{prefix}/binary/key")["SecretBinary"] == b"\x00\xff\x10secret"

# Listing with a name filter, in pages of two, through boto3's paginator.
for i in range(5):
    sm.create_secret(Name=f"{prefix}/listed/s{i}", SecretString=f"v{i}", Description=f"d{i}")
pages = sm.get_paginator("list_secrets").paginate(
    Filters=[{"Key": "name", "Values": [f"{prefix}/listed/"]}], PaginationConfig={"PageSize": 2}
)
listed = [s for p in pages for s in p["SecretList"]]
assert [s["Name"] for s in listed] == [f"{prefix}/listed/s{i}" for i in range(5)], listed
assert [s["Description"] for s in listed] == [f"d{i}" for i in range(5)]
assert "SecretString" not in json.dumps(listed, default=str)
everything = [s["Name"] for p in sm.get_paginator("list_secrets").paginate() for s in p["SecretList"]]
assert name in everything and written_by_v1 in everything, everything

# Several at once, a missing one among them.
batch = sm.batch_get_secret_value(SecretIdList=[f"{prefix}/listed/s0", missing, f"{prefix}/listed/s1"])
assert [v["SecretString"] for v in batch["SecretValues"]] == ["v0", "v1"]
assert [(e["SecretId"], e["ErrorCode"]) for e in batch["Errors"]] == [(missing, "ResourceNotFoundException")]
batch = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [f"{prefix}/listed/"]}], MaxResults=3)
assert len(batch["SecretValues"]) == 3 and "NextToken" in batch

# Deletion: forced, and with a recovery window answered honestly (deleted now).
deleted = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
c, _ = code(sm.get_secret_value, SecretId=name)
assert c == "ResourceNotFoundException"
before = time.time()
windowed = sm.delete_secret(SecretId=f"{prefix}/listed/s4", RecoveryWindowInDays=7)
assert abs(windowed["DeletionDate"].timestamp() - before) < 60, windowed["DeletionDate"]
c, _ = code(sm.delete_secret, SecretId=f"{prefix}/listed/s3", RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
assert c == "InvalidParameterException"

# A secret created here is left for the Rust side to read through /v1.
sm.create_secret(Name=f"{prefix}/written/by/boto3", SecretString="from-boto3")
print(json.dumps({"deleted_arn": deleted["ARN"]}))
