#!/usr/bin/env python3
"""Drive the sandbox with Box's official Python SDK (box-sdk-gen), unchanged.

Run by tests/e2e/sdk.rs with the venv of scripts/sdk-venv.sh:

    SANDBOX_READY='<the sandbox ready line>' SDK_WORK_DIR=/tmp/x python sdk_check.py

Auth is the SDK's own JWT implementation (JWTConfig.from_config_file on the sandbox's generated
app config, encrypted private key and all); the only customisation is the base URLs
(BoxClient.with_custom_base_urls). Note that the SDK sends the token request to
`{base_url}/oauth2/token` (its `oauth_2_url` is only the browser authorize URL) with the JWT
`aud` fixed to https://api.box.com/oauth2/token, whatever the base URLs are.

Prints one line per step ("ok <step>: ..." or "FAIL <step>: ..."), then a final line
`RESULT {json}` with the IDs the Rust test checks in the sandbox state. Exits 1 on the first
failure.
"""

import hashlib
import io
import json
import os
import sys
import traceback

from box_sdk_gen import (
    BaseUrls,
    BoxAPIError,
    BoxClient,
    BoxJWTAuth,
    CreateFolderParent,
    JWTConfig,
    UpdateFileByIdParent,
    UploadFileAttributes,
    UploadFileAttributesParentField,
)

BIG_SIZE = 52 * 1024 * 1024 + 12_345  # over the SDK's and Box's 50 MB chunking threshold


def step(name, action):
    try:
        detail = action()
    except BoxAPIError as error:
        info = error.response_info
        print(f"FAIL {name}: BoxAPIError {info.status_code} {info.code}: {info.body}", flush=True)
        raise SystemExit(1)
    except Exception:  # noqa: BLE001 - report anything the SDK raises
        print(f"FAIL {name}: {traceback.format_exc()}", flush=True)
        raise SystemExit(1)
    print(f"ok {name}: {detail}", flush=True)


def expect_conflict(action):
    try:
        action()
    except BoxAPIError as error:
        info = error.response_info
        if info.status_code == 409 and info.code == "item_name_in_use":
            return info.context_info
        raise AssertionError(f"expected 409 item_name_in_use, got {info.status_code} {info.code}")
    raise AssertionError("expected a BoxAPIError, the call succeeded")


def main():
    ready = json.loads(os.environ["SANDBOX_READY"])
    work_dir = os.environ["SDK_WORK_DIR"]
    state = {}

    config = JWTConfig.from_config_file(ready["box_app_config"])
    auth = BoxJWTAuth(config=config)
    client = BoxClient(auth=auth).with_custom_base_urls(
        BaseUrls(
            base_url=ready["base_url"],
            upload_url=ready["upload_url"],
            oauth_2_url=ready["oauth2_url"],
        )
    )

    def token():
        access = auth.retrieve_token(network_session=client.network_session)
        assert access.access_token, "empty access token"
        return f"access token of {len(access.access_token)} characters, expires_in {access.expires_in}"

    step("token", token)

    def list_items():
        items = client.folders.get_folder_items(ready["watched_folder_ids"][0])
        return f"{len(items.entries)} entries in the watched folder"

    step("list folder items", list_items)

    def create_folder():
        folder = client.folders.create_folder(
            "sdk-check", CreateFolderParent(id=ready["box_root_folder_id"])
        )
        moved = client.folders.create_folder("sdk-moved", CreateFolderParent(id=folder.id))
        state["folder_id"] = folder.id
        state["moved_folder_id"] = moved.id
        return f"folders {folder.id} and {moved.id}"

    step("create folder", create_folder)

    small = b"hello from box-sdk-gen\n" * 100

    def simple_upload():
        files = client.uploads.upload_file(
            UploadFileAttributes(
                name="small.txt", parent=UploadFileAttributesParentField(id=state["folder_id"])
            ),
            io.BytesIO(small),
        )
        entry = files.entries[0]
        assert entry.sha_1 == hashlib.sha1(small).hexdigest(), f"sha1 {entry.sha_1}"
        state["small_id"] = entry.id
        state["small_sha1"] = entry.sha_1
        return f"file {entry.id}, {entry.size} bytes"

    step("simple upload", simple_upload)

    big_path = os.path.join(work_dir, "big.bin")
    big_hash = hashlib.sha1()
    with open(big_path, "wb") as out:
        block = hashlib.sha256(b"box-sdk-gen").digest() * 4096  # 128 KiB
        written = 0
        counter = 0
        while written < BIG_SIZE:
            chunk = bytes([counter % 251]) + block[1:]
            chunk = chunk[: BIG_SIZE - written]
            out.write(chunk)
            big_hash.update(chunk)
            written += len(chunk)
            counter += 1
    big_sha1 = big_hash.hexdigest()

    def chunked_upload():
        with open(big_path, "rb") as stream:
            entry = client.chunked_uploads.upload_big_file(
                stream, "big.bin", BIG_SIZE, state["folder_id"]
            )
        assert entry.sha_1 == big_sha1, f"sha1 {entry.sha_1} != {big_sha1}"
        assert entry.size == BIG_SIZE, f"size {entry.size}"
        state["big_id"] = entry.id
        state["big_sha1"] = big_sha1
        return f"file {entry.id}, {entry.size} bytes through an upload session"

    step("upload_big_file", chunked_upload)

    def download():
        stream = client.downloads.download_file(state["big_id"])
        digest = hashlib.sha1()
        size = 0
        while True:
            chunk = stream.read(1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        assert digest.hexdigest() == big_sha1, f"downloaded sha1 {digest.hexdigest()}"
        assert size == BIG_SIZE, f"downloaded {size} bytes"
        return f"{size} bytes, sha1 matches"

    step("download", download)

    def move():
        moved = client.files.update_file_by_id(
            state["small_id"], parent=UpdateFileByIdParent(id=state["moved_folder_id"])
        )
        assert moved.parent.id == state["moved_folder_id"], f"parent {moved.parent.id}"
        return f"file {moved.id} now in folder {moved.parent.id}"

    step("move", move)

    def conflicts():
        folder_context = expect_conflict(
            lambda: client.folders.create_folder(
                "SDK-CHECK", CreateFolderParent(id=ready["box_root_folder_id"])
            )
        )
        conflict = folder_context["conflicts"][0]
        assert conflict["id"] == state["folder_id"], f"folder conflict {conflict}"
        file_context = expect_conflict(
            lambda: client.uploads.upload_file(
                UploadFileAttributes(
                    name="Big.BIN", parent=UploadFileAttributesParentField(id=state["folder_id"])
                ),
                io.BytesIO(b"other content"),
            )
        )
        assert file_context["conflicts"]["id"] == state["big_id"], f"file conflict {file_context}"
        return "create folder and upload both raised BoxAPIError 409 item_name_in_use"

    step("conflict error", conflicts)

    print("RESULT " + json.dumps(state), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
