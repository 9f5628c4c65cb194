"""docs/reliability.md's "Security" section keeps up with the code: every S3
call shoebox makes has its row in the IAM table, and the example policies
grant what their rows say the sidecar and the readers need."""

from __future__ import annotations

import json
import re

from archive_files import ROOT

DOC = (ROOT / "docs" / "reliability.md").read_text()
SECTION = DOC.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
IAM = SECTION.split("\n### IAM", 1)[1].split("\n### ", 1)[0]

#: boto3 client methods as the S3 API operations they send. upload_file is
#: boto3's transfer manager: one PUT, or a multipart upload it aborts when
#: a part fails.
OPERATIONS = {
    "head_bucket": {"HeadBucket"},
    "head_object": {"HeadObject"},
    "get_object": {"GetObject"},
    "list_objects_v2": {"ListObjectsV2"},
    "list_multipart_uploads": {"ListMultipartUploads"},
    "abort_multipart_upload": {"AbortMultipartUpload"},
    "upload_file": {"PutObject", "CreateMultipartUpload", "UploadPart",
                    "CompleteMultipartUpload", "AbortMultipartUpload"},
}
# client.method( or s3_client.method( or get_paginator("method")
_CALL = re.compile(r"\b(?:client|s3_client)\.(?!get_paginator)(\w+)\("
                   r"|get_paginator\(\"(\w+)\"\)")


def calls(module: str) -> set[str]:
    """The S3 API operations ``shoebox/<module>`` sends."""
    found: set[str] = set()
    for method, paginated in _CALL.findall((ROOT / "shoebox" / module).read_text()):
        name = paginated or method
        assert name in OPERATIONS, f"{module} calls {name}: add it to OPERATIONS and the doc"
        found |= OPERATIONS[name]
    return found


def table() -> list[tuple[set[str], set[str], str]]:
    """The IAM table's rows: (operations, permissions, who)."""
    rows = []
    for line in IAM.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("call", "---"):
            continue
        operations = set(re.findall(r"`([A-Z]\w+)`", cells[0]))
        permissions = set(re.findall(r"`(s3:\w+)`", cells[1]))
        rows.append((operations, permissions, cells[3]))
    return rows


def policies() -> list[set[str]]:
    """The actions each JSON policy of the section allows."""
    allowed = []
    for block in re.findall(r"```json\n(.*?)```", IAM, re.S):
        actions: set[str] = set()
        for statement in json.loads(block)["Statement"]:
            assert statement["Effect"] == "Allow"
            action = statement["Action"]
            actions |= {action} if isinstance(action, str) else set(action)
        allowed.append(actions)
    return allowed


def test_every_s3_operation_the_code_sends_has_its_row_in_the_iam_table() -> None:
    documented = {operation for operations, _, _ in table() for operation in operations}
    for module in ("destinations.py", "s3.py", "export.py", "sources.py"):
        missing = calls(module) - documented
        assert not missing, f"{module}: {sorted(missing)} not in docs/reliability.md"


def test_the_sidecars_operations_are_its_rows_and_the_readers_theirs() -> None:
    by_who: dict[str, set[str]] = {"sidecar": set(), "readers": set()}
    for operations, _, who in table():
        for name in by_who:
            if name in who:
                by_who[name] |= operations
    assert calls("destinations.py") <= by_who["sidecar"]
    assert {"ListObjectsV2", "GetObject"} <= by_who["readers"]


def test_the_example_policies_allow_what_their_rows_need() -> None:
    sidecar, readers = policies()
    for _, permissions, who in table():
        if "sidecar" in who and "if used" not in who:
            assert permissions <= sidecar, (permissions, who)
        if "readers" in who:
            assert permissions <= readers, (permissions, who)
    # The deploy units' sidecar.toml tags its objects.
    assert "s3:PutObjectTagging" in sidecar
    # Readers never write.
    assert not {action for action in readers if "Put" in action or "Delete" in action}
