"""Every SSM Parameter Store operation the broker answers, through boto3 pointed
at the broker by AWS_ENDPOINT_URL_SSM, with OpenMetadata's flow first (create
with tags and Overwrite=False; on ParameterAlreadyExists, Overwrite=True without
tags). Asserts as it goes."""
import sys

import boto3
from botocore.exceptions import ClientError

ssm = boto3.client("ssm")
prefix = sys.argv[1]


def code(call, **kw):
    try:
        call(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"{call.__name__} did not fail")


name = f"{prefix}/database/pg/password"
first = ssm.put_parameter(Name=name, Value="one", Type="SecureString", Overwrite=False,
                          Tags=[{"Key": "owner", "Value": "om"}])
assert first["Version"] == 1 and first["Tier"] == "Standard", first
c, _ = code(ssm.put_parameter, Name=name, Value="two", Type="SecureString", Overwrite=False,
            Tags=[{"Key": "owner", "Value": "om"}])
assert c == "ParameterAlreadyExists", c
c, m = code(ssm.put_parameter, Name=name, Value="two", Type="SecureString", Overwrite=True,
            Tags=[{"Key": "owner", "Value": "om"}])
assert c == "ValidationException" and "tags and overwrite" in m, (c, m)
second = ssm.put_parameter(Name=name, Value="two", Type="SecureString", Overwrite=True)
assert second["Version"] == 2, second
p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
assert (p["Value"], p["Type"], p["Version"]) == ("two", "SecureString", 2), p
assert p["ARN"].endswith(f":parameter{name}"), p["ARN"]
assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "*********"
assert ssm.get_parameter(Name=f"{name}:2", WithDecryption=True)["Parameter"]["Value"] == "two"
c, _ = code(ssm.get_parameter, Name=f"{name}:1", WithDecryption=True)
assert c == "ParameterVersionNotFound", c
assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == [
    {"Key": "owner", "Value": "om"}]
ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=[{"Key": "env", "Value": "dev"}])
assert len(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]) == 2

# Plain strings read back without decryption.
ssm.put_parameter(Name=f"{prefix}/plain", Value="visible", Type="String")
assert ssm.get_parameter(Name=f"{prefix}/plain")["Parameter"]["Value"] == "visible"

# A tree, read by path in pages.
for i in range(4):
    ssm.put_parameter(Name=f"{prefix}/tree/a{i}", Value=f"a{i}", Type="SecureString")
    ssm.put_parameter(Name=f"{prefix}/tree/deep/b{i}", Value=f"b{i}", Type="SecureString")
pages = ssm.get_paginator("get_parameters_by_path").paginate(
    Path=f"{prefix}/tree", WithDecryption=True, PaginationConfig={"PageSize": 3})
one_level = sorted(p["Value"] for page in pages for p in page["Parameters"])
assert one_level == ["a0", "a1", "a2", "a3"], one_level
pages = ssm.get_paginator("get_parameters_by_path").paginate(
    Path=f"{prefix}/tree", Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 3})
everything = sorted(p["Value"] for page in pages for p in page["Parameters"])
assert everything == sorted([f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]), everything

got = ssm.get_parameters(Names=[f"{prefix}/tree/a0", f"{prefix}/none", f"{prefix}/tree/a1"], WithDecryption=True)
assert [p["Value"] for p in got["Parameters"]] == ["a0", "a1"]
assert got["InvalidParameters"] == [f"{prefix}/none"]

described = [p for page in ssm.get_paginator("describe_parameters").paginate(
    ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [f"{prefix}/tree"]}],
    PaginationConfig={"PageSize": 3}) for p in page["Parameters"]]
assert len(described) == 8 and all("Value" not in p for p in described), described
named = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])
assert [p["Name"] for p in named["Parameters"]] == [name]
typed = ssm.describe_parameters(ParameterFilters=[
    {"Key": "Name", "Option": "BeginsWith", "Values": [f"{prefix}/plain"]},
    {"Key": "Type", "Option": "Equals", "Values": ["String"]}])
assert [p["Name"] for p in typed["Parameters"]] == [f"{prefix}/plain"], typed

# Bad names, too-long values: refused, nothing written.
c, m = code(ssm.put_parameter, Name="/aws/reserved", Value="x", Type="String")
assert c == "ValidationException" and "aws" in m, (c, m)
c, m = code(ssm.put_parameter, Name=name, Value="x" * 4097, Type="SecureString", Overwrite=True)
assert c == "ValidationException" and "Value" in m, (c, m)
assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "two"

ssm.delete_parameter(Name=name)
c, _ = code(ssm.get_parameter, Name=name, WithDecryption=True)
assert c == "ParameterNotFound", c
c, _ = code(ssm.delete_parameter, Name=name)
assert c == "ParameterNotFound", c
ssm.put_parameter(Name=f"{prefix}/written/by/boto3", Value="from-ssm", Type="SecureString")
print("ok")
