//! The sandbox's API: one sandbox shared by this module's tests ([`Launch`], a small scenario
//! with generated media), exercised over HTTP with ureq like the real clients.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rsa::pkcs1::EncodeRsaPrivateKey;
use sandbox::keys::{load_box_app, BoxAppKeys};
use sandbox::launch::{Launch, Running};
use sandbox::server::ReadyInfo;
use serde_json::{json, Value};

use crate::util::{agent, body_json, sha1_hex};

/// The sandbox every test of this binary shares (never dropped: it serves until the process
/// ends).
fn sandbox() -> &'static Running {
    static SANDBOX: OnceLock<Running> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Launch::new()
            .file("media/master.mp4", vec![7u8; 100_000])
            .file("media/visual.png", &b"\x89PNG fake image"[..])
            .scenario_text(
                r"
box:
  watched_folders: [incoming, incoming-de]
dam:
  import_delay_ms: 200
  campaigns:
    - number: C-2026-0001
      name: Test Campaign
      status: A1
      masters:
        - name: Test_Master_30s.mp4
          file: media/master.mp4
          fields:
            ARTESIA.FIELD.ASSET DESCRIPTION: Test master
            FERRERO.FIELD.MKTG.ASSET TYPE: {value: video, display: Video}
            MAIN_LANGUAGES: {value: EN, display: English}
            FERRERO.MARKETING.FIELD.DURATION_SECONDS: {number: 30}
        - name: Test_Visual.png
          file: media/visual.png
    - number: C-2026-0002
      name: Already Done
      status: A3
",
            )
            .args(["--fault-seed", "7"])
            .start()
    })
}

fn ready() -> &'static ReadyInfo {
    sandbox().ready()
}

fn app_config() -> &'static BoxAppKeys {
    static CONFIG: OnceLock<BoxAppKeys> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = &ready().box_app_config;
        let text = std::fs::read_to_string(path).expect("app config");
        let value: Value = serde_json::from_str(&text).expect("json");
        let pem = value["boxAppSettings"]["appAuth"]["privateKey"]
            .as_str()
            .expect("key");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        load_box_app(path).expect("the app config's key decrypts")
    })
}

fn assertion(claims_patch: Value, kid: Option<&str>) -> String {
    let config = app_config();
    let now = jiff::Timestamp::now().as_second();
    let mut claims = json!({
        "iss": config.client_id,
        "sub": config.enterprise_id,
        "box_sub_type": "enterprise",
        "aud": "https://api.box.com/oauth2/token",
        "jti": uuid::Uuid::new_v4().to_string(),
        "exp": now + 45,
    });
    if let (Some(target), Some(patch)) = (claims.as_object_mut(), claims_patch.as_object()) {
        for (k, v) in patch {
            target.insert(k.clone(), v.clone());
        }
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.unwrap_or(&config.public_key_id).to_owned());
    jsonwebtoken::encode(&header, &claims, &config.encoding_key).expect("sign")
}

fn request_token(assertion: &str) -> (u16, Value) {
    let config = app_config();
    let mut response = agent()
        .post(&ready().oauth2_url)
        .send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .expect("token request");
    (response.status().as_u16(), body_json(&mut response))
}

fn box_token() -> String {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let (status, body) = request_token(&assertion(json!({}), None));
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().expect("token").to_owned()
        })
        .clone()
}

fn box_get(path: &str) -> (u16, Value) {
    let mut response = agent()
        .get(format!("{}{path}", ready().base_url))
        .header("Authorization", format!("Bearer {}", box_token()))
        .call()
        .expect("request");
    (response.status().as_u16(), body_json(&mut response))
}

fn box_send(method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}{path}", ready().base_url);
    let auth = format!("Bearer {}", box_token());
    let mut response = match method {
        "POST" => agent()
            .post(&url)
            .header("Authorization", &auth)
            .send_json(body),
        "PUT" => agent()
            .put(&url)
            .header("Authorization", &auth)
            .send_json(body),
        _ => panic!("method"),
    }
    .expect("request");
    (response.status().as_u16(), body_json(&mut response))
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----sandboxtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file_name, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(file_name) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn box_upload(
    path: &str,
    parts: &[(&str, Option<&str>, &[u8])],
    content_md5: Option<&str>,
) -> (u16, Value) {
    let (content_type, body) = multipart(parts);
    let mut request = agent()
        .post(format!("{}/api{path}", ready().base_url))
        .header("Authorization", format!("Bearer {}", box_token()))
        .header("Content-Type", content_type);
    if let Some(digest) = content_md5 {
        request = request.header("Content-MD5", digest);
    }
    let mut response = request.send(&body[..]).expect("upload");
    (response.status().as_u16(), body_json(&mut response))
}

fn create_box_folder(parent: &str, name: &str) -> String {
    let (status, body) = box_send(
        "POST",
        "/2.0/folders",
        json!({"name": name, "parent": {"id": parent}}),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

// ------------------------------------------------------------------------------------------
// Box
// ------------------------------------------------------------------------------------------

#[test]
fn token_exchange_verifies_signature_and_claims() {
    let jti = format!("fixed-jti-{}", uuid::Uuid::new_v4());
    let signed = assertion(json!({"jti": jti}), None);
    let (status, body) = request_token(&signed);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().unwrap_or(0) > 0);
    assert_eq!(body["restricted_to"], json!([]));

    // Same jti again: rejected even with a fresh signature.
    let (status, body) = request_token(&assertion(json!({"jti": jti}), None));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("'jti'"),
        "{body}"
    );

    let now = jiff::Timestamp::now().as_second();
    let (status, body) = request_token(&assertion(json!({"exp": now + 600}), None));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("'exp'"),
        "{body}"
    );

    let (status, body) = request_token(&assertion(json!({"exp": now - 5}), None));
    assert_eq!(status, 400, "{body}");

    let (status, body) = request_token(&assertion(json!({"jti": "short"}), None));
    assert_eq!(status, 400, "{body}");

    let (status, body) = request_token(&assertion(
        json!({"aud": "http://127.0.0.1/oauth2/token"}),
        None,
    ));
    assert_eq!(status, 400, "{body}");

    let (status, body) = request_token(&assertion(json!({}), Some("otherkid")));
    assert_eq!(status, 400, "{body}");

    // A key that is not the app's: signature error.
    let mut rng = rand::rngs::OsRng;
    let other = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("key");
    let der = other.to_pkcs1_der().expect("der");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(app_config().public_key_id.clone());
    let claims = json!({
        "iss": app_config().client_id, "sub": app_config().enterprise_id, "box_sub_type": "enterprise",
        "aud": "https://api.box.com/oauth2/token", "jti": uuid::Uuid::new_v4().to_string(), "exp": now + 30,
    });
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .expect("sign");
    let (status, body) = request_token(&forged);
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("Signature"),
        "{body}"
    );

    // Wrong client secret.
    let mut response = agent()
        .post(&ready().oauth2_url)
        .send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion(json!({}), None).as_str()),
            ("client_id", app_config().client_id.as_str()),
            ("client_secret", "nope"),
        ])
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(body_json(&mut response)["error"], "invalid_client");
}

#[test]
fn missing_or_unknown_token_is_401_with_www_authenticate() {
    for auth in [None, Some("Bearer not-a-token")] {
        let mut request = agent().get(format!("{}/2.0/folders/0", ready().base_url));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.call().expect("request");
        assert_eq!(response.status().as_u16(), 401);
        let header = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            header.starts_with("Bearer realm=\"Service\", error=\"invalid_token\""),
            "{header}"
        );
        assert_eq!(response.body_mut().read_to_string().expect("body"), "");
    }
}

#[test]
fn folder_create_conflict_and_name_rules() {
    let parent = create_box_folder(
        &ready().box_root_folder_id,
        &format!("conflicts-{}", uuid::Uuid::new_v4()),
    );
    let id = create_box_folder(&parent, "C-2026-0001 Test Campaign");
    let (status, body) = box_send(
        "POST",
        "/2.0/folders",
        json!({"name": "c-2026-0001 TEST campaign", "parent": {"id": parent}}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], "item_name_in_use");
    assert_eq!(body["status"], 409);
    assert!(body["request_id"].is_string() && body["help_url"].is_string());
    let conflicts = body["context_info"]["conflicts"]
        .as_array()
        .expect("conflicts is an array for folders");
    assert_eq!(conflicts[0]["id"], id.as_str());
    assert_eq!(conflicts[0]["type"], "folder");

    for bad in ["a/b", "back\\slash", ".", "..", "trailing ", ""] {
        let (status, body) = box_send(
            "POST",
            "/2.0/folders",
            json!({"name": bad, "parent": {"id": parent}}),
        );
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["code"], "item_name_invalid", "{bad:?}");
    }
    let (status, body) = box_send(
        "POST",
        "/2.0/folders",
        json!({"name": "x", "parent": {"id": "999"}}),
    );
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = box_get("/2.0/folders/424242/items");
    assert_eq!(status, 404);
}

#[test]
fn marker_paging_lists_folders_first_then_files() {
    let folder = create_box_folder(
        &ready().box_root_folder_id,
        &format!("paging-{}", uuid::Uuid::new_v4()),
    );
    create_box_folder(&folder, "zz-subfolder");
    for i in 0..5 {
        let (status, body) = box_upload(
            "/2.0/files/content",
            &[
                (
                    "attributes",
                    None,
                    json!({"name": format!("file-{i}.txt"), "parent": {"id": folder}})
                        .to_string()
                        .as_bytes(),
                ),
                ("file", Some("x.txt"), format!("content {i}").as_bytes()),
            ],
            None,
        );
        assert_eq!(status, 201, "{body}");
    }
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/2.0/folders/{folder}/items?usemarker=true&limit=2&fields=type,id,name,sha1,file_version,size,parent");
        if let Some(marker) = &marker {
            path.push_str(&format!("&marker={marker}"));
        }
        let (status, body) = box_get(&path);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["limit"], 2);
        pages += 1;
        for entry in body["entries"].as_array().expect("entries") {
            assert!(
                entry["id"].is_string()
                    && entry["etag"].is_string()
                    && entry["sequence_id"].is_string()
            );
            if entry["type"] == "file" {
                assert_eq!(entry["file_version"]["type"], "file_version");
                assert_eq!(entry["sha1"], entry["file_version"]["sha1"]);
                assert!(entry["size"].is_u64());
                assert_eq!(entry["parent"]["id"], folder.as_str());
            }
            names.push(entry["name"].as_str().expect("name").to_owned());
        }
        if let Some(next) = body["next_marker"].as_str() {
            marker = Some(next.to_owned());
        } else {
            assert!(body["next_marker"].is_null(), "last page sends null");
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        [
            "zz-subfolder",
            "file-0.txt",
            "file-1.txt",
            "file-2.txt",
            "file-3.txt",
            "file-4.txt"
        ]
    );

    let (status, body) = box_get(&format!("/2.0/folders/{folder}/items?offset=1&limit=2"));
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 6);
    assert_eq!(body["offset"], 1);
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(2));
    assert!(body["order"].is_array());
}

#[test]
fn upload_conflict_digest_order_and_new_version() {
    let folder = create_box_folder(
        &ready().box_root_folder_id,
        &format!("uploads-{}", uuid::Uuid::new_v4()),
    );
    let data = b"hello derivative".as_slice();
    let attributes =
        json!({"name": "K7Q2XM_a_video_IT_9x16_v01.mp4", "parent": {"id": folder}}).to_string();
    let (status, body) = box_upload(
        "/2.0/files/content",
        &[
            ("attributes", None, attributes.as_bytes()),
            ("file", Some("a.mp4"), data),
        ],
        Some(&sha1_hex(data)),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["total_count"], 1);
    let file = &body["entries"][0];
    assert_eq!(file["sha1"], sha1_hex(data).as_str());
    assert_eq!(file["size"], data.len());
    assert!(file["created_at"]
        .as_str()
        .unwrap_or("")
        .ends_with("-08:00"));
    let file_id = file["id"].as_str().expect("id").to_owned();
    let version_id = file["file_version"]["id"]
        .as_str()
        .expect("version")
        .to_owned();

    // Same name again: 409 with ONE conflict object carrying id, sha1, file_version.
    let (status, body) = box_upload(
        "/2.0/files/content",
        &[
            ("attributes", None, attributes.as_bytes()),
            ("file", Some("a.mp4"), b"other"),
        ],
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "item_name_in_use");
    let conflict = &body["context_info"]["conflicts"];
    assert!(conflict.is_object(), "{body}");
    assert_eq!(conflict["id"], file_id.as_str());
    assert_eq!(conflict["sha1"], sha1_hex(data).as_str());
    assert_eq!(conflict["file_version"]["id"], version_id.as_str());

    // File part before attributes.
    let other = json!({"name": "other.mp4", "parent": {"id": folder}}).to_string();
    let (status, body) = box_upload(
        "/2.0/files/content",
        &[
            ("file", Some("a.mp4"), data),
            ("attributes", None, other.as_bytes()),
        ],
        None,
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("metadata_after_file_contents")),
        "{body}"
    );

    // Wrong digest.
    let (status, body) = box_upload(
        "/2.0/files/content",
        &[
            ("attributes", None, other.as_bytes()),
            ("file", Some("a.mp4"), data),
        ],
        Some("0000000000000000000000000000000000000000"),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_digest")),
        "{body}"
    );

    // New version: same id, new version id, new sha1 and etag.
    let new_data = b"hello derivative v2".as_slice();
    let (status, body) = box_upload(
        &format!("/2.0/files/{file_id}/content"),
        &[
            ("attributes", None, b"{}"),
            ("file", Some("a.mp4"), new_data),
        ],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let updated = &body["entries"][0];
    assert_eq!(updated["id"], file_id.as_str());
    assert_ne!(updated["file_version"]["id"], version_id.as_str());
    assert_eq!(updated["sha1"], sha1_hex(new_data).as_str());
    assert_eq!(updated["etag"], "1");

    // Move into a subfolder with a clashing name: 409 with one object; then rename succeeds.
    let target = create_box_folder(&folder, "_PROCESSED");
    let (status, _) = box_upload(
        "/2.0/files/content",
        &[
            (
                "attributes",
                None,
                json!({"name": "K7Q2XM_a_video_IT_9x16_v01.mp4", "parent": {"id": target}})
                    .to_string()
                    .as_bytes(),
            ),
            ("file", Some("a.mp4"), b"x"),
        ],
        None,
    );
    assert_eq!(status, 201);
    let (status, body) = box_send(
        "PUT",
        &format!("/2.0/files/{file_id}"),
        json!({"parent": {"id": target}}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["context_info"]["conflicts"].is_object());
    let (status, body) = box_send(
        "PUT",
        &format!("/2.0/files/{file_id}"),
        json!({"parent": {"id": target}, "name": format!("{file_id}_K7Q2XM_a_video_IT_9x16_v01.mp4")}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parent"]["id"], target.as_str());
    assert_eq!(body["path_collection"]["entries"][0]["id"], "0");
}

#[test]
fn download_redirects_to_second_port_without_auth() {
    let folder = create_box_folder(
        &ready().box_root_folder_id,
        &format!("downloads-{}", uuid::Uuid::new_v4()),
    );
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = box_upload(
        "/2.0/files/content",
        &[
            (
                "attributes",
                None,
                json!({"name": "d.bin", "parent": {"id": folder}})
                    .to_string()
                    .as_bytes(),
            ),
            ("file", Some("d.bin"), &data),
        ],
        None,
    );
    assert_eq!(status, 201, "{body}");
    let id = body["entries"][0]["id"].as_str().expect("id").to_owned();
    let location = |agent: &ureq::Agent| {
        let response = agent
            .get(format!("{}/2.0/files/{id}/content", ready().base_url))
            .header("Authorization", format!("Bearer {}", box_token()))
            .call()
            .expect("content");
        assert_eq!(response.status().as_u16(), 302);
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned()
    };
    let url = location(&agent());
    assert!(url.starts_with(&ready().download_url), "{url}");

    // Forwarding Authorization is refused.
    let response = agent()
        .get(&url)
        .header("Authorization", format!("Bearer {}", box_token()))
        .call()
        .expect("download");
    assert_eq!(response.status().as_u16(), 400);

    // A ureq agent following redirects drops the header: the default client behaviour works.
    let following: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = following
        .get(format!("{}/2.0/files/{id}/content", ready().base_url))
        .header("Authorization", format!("Bearer {}", box_token()))
        .call()
        .expect("download");
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.body_mut().read_to_vec().expect("bytes");
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));

    // Tickets are single-use; Range works on a fresh one.
    let url = location(&agent());
    let mut response = agent()
        .get(&url)
        .header("Range", "bytes=10-19")
        .call()
        .expect("range");
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(
        response.body_mut().read_to_vec().expect("bytes"),
        data[10..20].to_vec()
    );
    let response = agent().get(&url).call().expect("reuse");
    assert_eq!(response.status().as_u16(), 404);
}

#[test]
fn agency_upload_via_control_then_listing() {
    let watched = &ready().watched_folder_ids[0];
    let path = sandbox().dir().join("agency.txt");
    std::fs::write(&path, b"agency bytes").expect("write");
    let body = sandbox::agency_upload::run(
        &ready().control_url,
        watched,
        &path,
        Some("AGENCY_note_v01.txt"),
    )
    .expect("agency upload");
    let file: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(file["name"], "AGENCY_note_v01.txt");
    assert_eq!(file["created_by"]["login"], "producer@agency.example");
    // Same name again: new version of the same file.
    std::fs::write(&path, b"agency bytes v2").expect("write");
    let body = sandbox::agency_upload::run(
        &ready().control_url,
        watched,
        &path,
        Some("AGENCY_note_v01.txt"),
    )
    .expect("agency upload");
    let again: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(again["id"], file["id"]);
    assert_ne!(again["file_version"]["id"], file["file_version"]["id"]);

    let state = sandbox().state();
    let entry = state["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["id"] == file["id"])
        .expect("in state")
        .clone();
    assert_eq!(entry["version_count"], 2);
    assert_eq!(entry["path"], "/incoming/AGENCY_note_v01.txt");
}

// ------------------------------------------------------------------------------------------
// OTMM
// ------------------------------------------------------------------------------------------

struct Dam {
    digest: String,
    session_id: String,
}

fn dam_login() -> Dam {
    let mut response = agent()
        .post(format!("{}/otmmapi/v6/sessions", ready().dam_url))
        .send_form([
            ("username", ready().dam_username.as_str()),
            ("password", ready().dam_password.as_str()),
        ])
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("set-cookie").is_some());
    let body = body_json(&mut response);
    let session = &body["session_resource"]["session"];
    assert!(session["id"].is_i64());
    assert_eq!(session["message_digest"].as_str().map(str::len), Some(40));
    Dam {
        digest: session["message_digest"]
            .as_str()
            .expect("digest")
            .to_owned(),
        session_id: session["id"].to_string(),
    }
}

fn dam_get(dam: &Dam, path_and_query: &str) -> (u16, Value) {
    let mut response = agent()
        .get(format!("{}/otmmapi/v6{path_and_query}", ready().dam_url))
        .header("otmmauthtoken", &dam.digest)
        .call()
        .expect("dam get");
    (response.status().as_u16(), body_json(&mut response))
}

fn dam_form(dam: &Dam, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/otmmapi/v6{path}", ready().dam_url);
    let request = match method {
        "PUT" => agent().put(&url),
        _ => agent().post(&url),
    };
    let mut response = request
        .header("otmmauthtoken", &dam.digest)
        .header("X-Requested-By", &dam.session_id)
        .send_form(form.iter().copied())
        .expect("dam form");
    (response.status().as_u16(), body_json(&mut response))
}

fn dam_patch(dam: &Dam, path: &str, body: Value, csrf: bool) -> (u16, Value) {
    let mut request = agent()
        .patch(format!("{}/otmmapi/v6{path}", ready().dam_url))
        .header("otmmauthtoken", &dam.digest);
    if csrf {
        request = request.header("X-Requested-By", &dam.session_id);
    }
    let mut response = request.send_json(body).expect("patch");
    (response.status().as_u16(), body_json(&mut response))
}

fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn field_text(object: &Value, id: &str) -> Option<String> {
    let categories = object["metadata"]["metadata_element_list"].as_array()?;
    for category in categories {
        for field in category["metadata_element_list"].as_array()? {
            if field["id"] == id {
                let inner = &field["value"]["value"];
                let raw = if inner["type"] == "com.artesia.metadata.DomainValue" {
                    &inner["field_value"]["value"]
                } else {
                    &inner["value"]
                };
                return Some(match raw {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
    }
    None
}

#[test]
fn dam_requires_auth_and_csrf_header() {
    let (status, body) = dam_get(
        &Dam {
            digest: "0".repeat(40),
            session_id: "1".into(),
        },
        "/folders/x",
    );
    assert_eq!(status, 401);
    assert_eq!(body["exception_body"]["http_response_code"], 401);
    let mut response = agent()
        .post(format!("{}/otmmapi/v6/sessions", ready().dam_url))
        .send_form([("username", "cs-integration"), ("password", "wrong")])
        .expect("login");
    assert_eq!(response.status().as_u16(), 401);
    assert!(body_json(&mut response)["exception_body"].is_object());

    let dam = dam_login();
    let campaign = &ready().campaigns[0];
    let (status, body) = dam_patch(
        &dam,
        &format!("/folders/{}", campaign.folder_id),
        json!({}),
        false,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["exception_body"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("X-Requested-By"));

    // OAuth2 client credentials and bearer auth.
    let mut response = agent()
        .post(format!("{}/otmmapi/otds/token", ready().dam_url))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", ready().dam_client_id.as_str()),
            ("client_secret", ready().dam_client_secret.as_str()),
        ])
        .expect("token");
    assert_eq!(response.status().as_u16(), 200);
    let token = body_json(&mut response)["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = agent()
        .get(format!(
            "{}/otmmapi/v6/folders/{}",
            ready().dam_url,
            campaign.folder_id
        ))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn dam_search_browse_status_change_and_lookup() {
    let dam = dam_login();
    let conditions = json!({"search_condition_list": {"search_condition": [{
        "type": "com.artesia.search.SearchScalarCondition",
        "metadata_field_id": "FERRERO.FIELD.CAMPAIGN STATUS",
        "relational_operator_id": "ARTESIA.OPERATOR.CHAR.CONTAINS",
        "value": "A1",
    }]}});
    let (status, body) = dam_get(
        &dam,
        &format!(
            "/search/text?keyword_query=*&load_type=metadata&level_of_detail=slim&after=0&limit=10&search_condition_list={}",
            encode_query(&conditions.to_string())
        ),
    );
    assert_eq!(status, 200, "{body}");
    let result = &body["search_result_resource"];
    let ids: Vec<&str> = result["search_result"]["asset_id_list"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let campaign = &ready().campaigns[0];
    assert!(ids.contains(&campaign.folder_id.as_str()), "{body}");
    assert!(!ids.contains(&ready().campaigns[1].folder_id.as_str()));
    assert_eq!(result["asset_list"][0]["data_type"], "CONTAINER");

    // The masters inherit the campaign status: the search finds them too (strict dialect).
    let masters_hit = result["asset_list"]
        .as_array()
        .expect("list")
        .iter()
        .any(|hit| hit["name"] == "Test_Master_30s.mp4");
    assert!(masters_hit, "{body}");

    // A bare folder GET carries no metadata; the load parameters bring it.
    let (status, body) = dam_get(&dam, &format!("/folders/{}", campaign.folder_id));
    assert_eq!(status, 200);
    let folder = &body["folder_resource"]["folder"];
    assert_eq!(folder["container_child_counts"]["container_count"], 2);
    assert!(folder.get("metadata").is_none(), "{body}");
    let load = encode_query(r#"{"data_load_request":{"load_metadata":true}}"#);
    let (status, body) = dam_get(
        &dam,
        &format!(
            "/folders/{}?load_type=custom&data_load_request={load}",
            campaign.folder_id
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(
        field_text(
            &body["folder_resource"]["folder"],
            "FERRERO.FIELD.CAMPAIGN NUMBER"
        )
        .as_deref(),
        Some("C-2026-0001")
    );

    let (status, body) = dam_get(
        &dam,
        &format!(
            "/folders/{}/children?after=0&limit=10&load_type=metadata",
            campaign.folder_id
        ),
    );
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["folder_children"]["asset_list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["Master Assets", "Final Assets"]);

    let (status, body) = dam_get(
        &dam,
        &format!(
            "/folders/{}/children?load_type=metadata",
            campaign.masters_folder_id
        ),
    );
    assert_eq!(status, 200);
    let masters = body["folder_children"]["asset_list"]
        .as_array()
        .expect("list");
    assert_eq!(masters.len(), 2);
    let master_id = masters[0]["asset_id"].as_str().expect("id");
    let (status, body) = dam_get(
        &dam,
        &format!("/assets/{master_id}?load_type=metadata&level_of_detail=full"),
    );
    assert_eq!(status, 200);
    let asset = &body["asset_resource"]["asset"];
    assert_eq!(asset["content_size"], 100_000);
    assert_eq!(asset["mime_type"], "video/mp4");
    assert_eq!(
        field_text(asset, "FERRERO.FIELD.MKTG.ASSET TYPE").as_deref(),
        Some("video")
    );
    assert_eq!(
        field_text(asset, "FERRERO.MARKETING.FIELD.DURATION_SECONDS").as_deref(),
        Some("30")
    );
    assert_eq!(
        field_text(asset, "ARTESIA.FIELD.ASSET NAME").as_deref(),
        Some("Test_Master_30s.mp4")
    );
    // Contents come through a redirect to another origin, which refuses the DAM's credentials.
    let response = agent()
        .get(format!(
            "{}/otmmapi/v6/assets/{master_id}/contents",
            ready().dam_url
        ))
        .header("otmmauthtoken", &dam.digest)
        .call()
        .expect("contents");
    assert_eq!(response.status().as_u16(), 302);
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(!location.starts_with(&ready().dam_url), "{location}");
    let leaked = agent()
        .get(&location)
        .header("otmmauthtoken", &dam.digest)
        .call()
        .expect("cdn");
    assert_eq!(leaked.status().as_u16(), 400);
    let mut response = agent().get(&location).call().expect("cdn");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.body_mut().read_to_vec().expect("bytes").len(),
        100_000
    );

    // Status change (strict dialect): folders cannot be locked, the PATCH needs no lock and
    // takes plain values only.
    let (status, body) = dam_form(
        &dam,
        "PUT",
        &format!("/assets/{}/state", campaign.folder_id),
        &[("action", "lock")],
    );
    assert_eq!(status, 403, "{body}");
    let path = format!("/folders/{}", campaign.folder_id);
    let domain_patch = json!({"edited_folder": {"data": {"metadata": [{
        "id": "FERRERO.FIELD.CAMPAIGN STATUS",
        "type": "com.artesia.metadata.MetadataField",
        "value": {"value": {"type": "com.artesia.metadata.DomainValue", "field_value": {"type": "string", "value": "A2"}}},
    }]}}});
    let (status, body) = dam_patch(&dam, &path, domain_patch, true);
    assert_eq!(status, 400, "{body}");
    let patch = json!({"edited_folder": {"data": {"metadata": [{
        "id": "FERRERO.FIELD.CAMPAIGN STATUS",
        "type": "com.artesia.metadata.MetadataField",
        "value": {"value": {"type": "string", "value": "A2"}},
    }]}}});
    let (status, body) = dam_patch(&dam, &path, patch, true);
    assert_eq!(status, 200, "{body}");
    let folder = &body["folder_resource"]["folder"];
    let status_field =
        folder["metadata"]["metadata_element_list"][0]["metadata_element_list"][2].clone();
    assert_eq!(
        status_field["value"]["value"]["type"],
        "com.artesia.metadata.DomainValue"
    );
    assert_eq!(status_field["value"]["value"]["field_value"]["value"], "A2");
    assert_eq!(
        status_field["value"]["value"]["display_value"],
        "A2 - Masters with agencies"
    );
    let state = sandbox().state();
    let change = state["dam"]["status_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["folder_id"] == campaign.folder_id.as_str())
        .expect("recorded")
        .clone();
    assert_eq!(
        (change["from"].as_str(), change["to"].as_str()),
        (Some("A1"), Some("A2"))
    );
    let folder_state = state["dam"]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .find(|f| f["id"] == campaign.folder_id.as_str())
        .expect("folder")
        .clone();
    assert_eq!(folder_state["status"], "A2");

    let (status, body) = dam_get(&dam, "/lookupdomains/FERRERO.DOMAIN.MKTG%20ASSET%20TYPE");
    assert_eq!(status, 200);
    let domain = &body["lookup_domain_resource"]["lookup_domain"];
    assert_eq!(domain["domainId"], "FERRERO.DOMAIN.MKTG ASSET TYPE");
    let displays: Vec<&str> = domain["domainValues"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["display_value"].as_str())
        .collect();
    assert!(displays.contains(&"Banner "));
    let (status, _) = dam_get(&dam, "/lookupdomains/FERRERO.DOMAIN.LANGUAGES");
    assert_eq!(status, 200);
}

#[test]
fn dam_import_is_asynchronous_and_keeps_metadata() {
    let dam = dam_login();
    let campaign = &ready().campaigns[0];
    let representation = json!({"asset_resource": {"asset": {
        "metadata_model_id": "FERRERO.MODEL.MARKETING ASSET",
        "security_policy_list": [{"id": 2}],
        "metadata": {"metadata_element_list": [
            {"type": "com.artesia.metadata.MetadataField", "id": "ARTESIA.FIELD.ASSET NAME", "value": {"value": {"type": "string", "value": "Breakfast-Moments_video_IT_9x16-15s.mp4"}}},
            {"type": "com.artesia.metadata.MetadataField", "id": "MAIN_LANGUAGES", "value": {"value": {"type": "com.artesia.metadata.DomainValue", "field_value": {"type": "string", "value": "IT"}, "display_value": "Italian"}}},
        ]},
    }}});
    let manifest = json!({"upload_manifest": {"master_files": [{"file": {"file_name": "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4", "file_type": "video/mp4"}}]}});
    let data = vec![3u8; 4096];
    let (content_type, body) = multipart(&[
        (
            "asset_representation",
            None,
            representation.to_string().as_bytes(),
        ),
        (
            "parent_folder_id",
            None,
            campaign.final_assets_folder_id.as_bytes(),
        ),
        ("manifest", None, manifest.to_string().as_bytes()),
        (
            "files",
            Some("K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4"),
            &data,
        ),
    ]);
    let mut response = agent()
        .post(format!("{}/otmmapi/v6/assets", ready().dam_url))
        .header("otmmauthtoken", &dam.digest)
        .header("X-Requested-By", &dam.session_id)
        .header("Content-Type", content_type)
        .send(&body[..])
        .expect("import");
    assert_eq!(response.status().as_u16(), 202);
    let job_id = body_json(&mut response)["job_handle"]["job_id"]
        .as_str()
        .expect("job")
        .to_owned();

    let (status, body) = dam_get(
        &dam,
        &format!("/folders/{}/children", campaign.final_assets_folder_id),
    );
    assert_eq!(status, 200);
    let before = body["folder_children"]["asset_list"]
        .as_array()
        .map_or(0, Vec::len);

    // The strict dialect has no job resource: the import is found by listing (or search).
    let (status, _) = dam_get(&dam, &format!("/jobs/{job_id}/assets"));
    assert_eq!(status, 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    let asset_id = loop {
        let (status, body) = dam_get(
            &dam,
            &format!("/folders/{}/children", campaign.final_assets_folder_id),
        );
        assert_eq!(status, 200);
        let found = body["folder_children"]["asset_list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|asset| asset["name"] == "Breakfast-Moments_video_IT_9x16-15s.mp4")
            .and_then(|asset| asset["asset_id"].as_str())
            .map(str::to_owned);
        if let Some(asset_id) = found {
            break asset_id;
        }
        assert!(Instant::now() < deadline, "the import never landed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, body) = dam_get(&dam, &format!("/assets/{asset_id}?load_type=metadata"));
    assert_eq!(status, 200);
    let asset = &body["asset_resource"]["asset"];
    assert_eq!(asset["name"], "Breakfast-Moments_video_IT_9x16-15s.mp4");
    assert_eq!(asset["content_size"], 4096);
    assert_eq!(field_text(asset, "MAIN_LANGUAGES").as_deref(), Some("IT"));
    let (_, body) = dam_get(
        &dam,
        &format!("/folders/{}/children", campaign.final_assets_folder_id),
    );
    assert_eq!(
        body["folder_children"]["asset_list"]
            .as_array()
            .map_or(0, Vec::len),
        before + 1
    );

    // Unknown folder: 404; broken representation: 400.
    let (content_type, body) = multipart(&[
        ("asset_representation", None, b"{not json"),
        (
            "parent_folder_id",
            None,
            campaign.final_assets_folder_id.as_bytes(),
        ),
        ("files", Some("x.mp4"), b"x"),
    ]);
    let response = agent()
        .post(format!("{}/otmmapi/v6/assets", ready().dam_url))
        .header("otmmauthtoken", &dam.digest)
        .header("X-Requested-By", &dam.session_id)
        .header("Content-Type", content_type)
        .send(&body[..])
        .expect("import");
    assert_eq!(response.status().as_u16(), 400);
    let (content_type, body) = multipart(&[
        (
            "asset_representation",
            None,
            representation.to_string().as_bytes(),
        ),
        (
            "parent_folder_id",
            None,
            b"0000000000000000000000000000000000000000",
        ),
        ("files", Some("x.mp4"), b"x"),
    ]);
    let response = agent()
        .post(format!("{}/otmmapi/v6/assets", ready().dam_url))
        .header("otmmauthtoken", &dam.digest)
        .header("X-Requested-By", &dam.session_id)
        .header("Content-Type", content_type)
        .send(&body[..])
        .expect("import");
    assert_eq!(response.status().as_u16(), 404);
}

// ------------------------------------------------------------------------------------------
// Mailgun, webhooks, faults, stats, startup
// ------------------------------------------------------------------------------------------

#[test]
fn mailgun_and_webhooks_are_recorded() {
    use base64::Engine;
    let url = format!(
        "{}/v3/{}/messages",
        ready().mailgun_url,
        ready().mailgun_domain
    );
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("api:{}", ready().mailgun_api_key));
    let subject = format!("Campaign done {}", uuid::Uuid::new_v4());
    let mut response = agent()
        .post(&url)
        .header("Authorization", format!("Basic {auth}"))
        .send_form([
            ("from", "cs@example.com"),
            ("to", "a@example.com, b@example.com"),
            ("subject", subject.as_str()),
            ("text", "hello"),
            ("h:X-Idempotency-Key", "key-1"),
        ])
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let reply = body_json(&mut response);
    assert_eq!(reply["message"], "Queued. Thank you.");
    let wrong = base64::engine::general_purpose::STANDARD.encode("api:wrong");
    let mut response = agent()
        .post(&url)
        .header("Authorization", format!("Basic {wrong}"))
        .send_form([("from", "x@example.com")])
        .expect("send");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.body_mut().read_to_string().expect("body"),
        "Forbidden"
    );

    let response = agent()
        .post(format!("{}/campaigns", ready().webhook_url))
        .header("Authorization", "Bearer hook-token")
        .header("Idempotency-Key", "idem-1")
        .send_json(json!({"event": "campaign.a2", "data": {"n": 1}}))
        .expect("webhook");
    assert_eq!(response.status().as_u16(), 200);

    let state = sandbox().state();
    let email = state["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .find(|e| e["subject"] == subject.as_str())
        .expect("email")
        .clone();
    assert_eq!(email["to"], json!(["a@example.com", "b@example.com"]));
    assert_eq!(email["headers"]["X-Idempotency-Key"], "key-1");
    assert_eq!(email["id"], reply["id"]);
    let hook = state["webhooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .find(|h| h["headers"]["idempotency-key"] == "idem-1")
        .expect("hook")
        .clone();
    assert_eq!(hook["name"], "campaigns");
    assert_eq!(hook["headers"]["authorization"], "Bearer hook-token");
    assert_eq!(hook["body"]["event"], "campaign.a2");
}

#[test]
fn faults_fail_matching_requests_count_times() {
    let dam = dam_login();
    let master = &ready().campaigns[0].master_asset_ids[1];
    let path = format!("/otmmapi/v6/assets/{master}/contents");
    let mut response = agent()
        .post(format!("{}/faults", ready().control_url))
        .send_json(json!({"method": "GET", "path_prefix": path, "status": 503, "count": 2, "retry_after": 1}))
        .expect("fault");
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        body_json(&mut response)
    );
    for _ in 0..2 {
        let mut response = agent()
            .get(format!("{}{path}", ready().dam_url))
            .header("otmmauthtoken", &dam.digest)
            .call()
            .expect("get");
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            body_json(&mut response)["exception_body"]["http_response_code"],
            503
        );
    }
    let response = agent()
        .get(format!("{}{path}", ready().dam_url))
        .header("otmmauthtoken", &dam.digest)
        .call()
        .expect("get");
    assert_eq!(
        response.status().as_u16(),
        302,
        "the redirect to the content host"
    );

    let stats = sandbox().stats();
    assert!(
        stats["routes"]["GET /otmmapi/v6/assets/{id}/contents 503"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "{stats}"
    );
    assert!(stats["dam_requests"].as_u64().unwrap_or(0) >= 3);
    assert!(stats["box_requests"].is_u64());
}

#[test]
fn default_scenario_and_non_loopback_refusal() {
    let error = match Launch::new().args(["--listen", "0.0.0.0:0"]).try_start() {
        Ok(_) => panic!("must refuse"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("loopback"), "{error}");
}

#[test]
fn launch_fails_loudly_on_a_missing_scenario_media_file_or_flag() {
    let missing = Launch::new()
        .scenario_file("scenarios/no-such-scenario.yaml")
        .try_start()
        .err()
        .map(|error| format!("{error:#}"))
        .expect("a missing scenario file must not start");
    assert!(missing.contains("no-such-scenario.yaml"), "{missing}");
    let media = Launch::new()
        .scenario_text(
            "dam:\n  campaigns:\n    - {number: C-1, name: One, status: A1, masters: [{name: m.mp4, file: absent.mp4}]}\n",
        )
        .try_start()
        .err()
        .map(|error| format!("{error:#}"))
        .expect("a missing media file must not start");
    assert!(
        media.contains("absent.mp4") && media.contains("not found"),
        "{media}"
    );
    let flag = Launch::new()
        .args(["--no-such-flag"])
        .try_start()
        .err()
        .map(|error| format!("{error:#}"))
        .expect("an unknown flag must not start");
    assert!(flag.contains("--no-such-flag"), "{flag}");
    let panic = std::panic::catch_unwind(|| Launch::new().args(["--part-size", "0"]).start())
        .err()
        .and_then(|payload| payload.downcast_ref::<String>().cloned())
        .expect("start() panics with the reason");
    assert!(
        panic.contains("--part-size must be at least 1 byte"),
        "{panic}"
    );
}

/// The binary's own contract, which the in-process launcher bypasses: `sandbox serve` prints
/// the ready line (the same JSON as [`Running::ready_line`]) on stdout, then serves; with
/// `--env-file` it first writes the binaries' environment there (mode 0600), which `sandbox env`
/// prints again from the saved ready line.
#[test]
fn the_binary_prints_the_ready_line_then_serves() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("sandbox.env");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fault-seed",
            "7",
            "--env-file",
        ])
        .arg(&env_file)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the sandbox binary");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let printed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let state = agent()
        .get(format!(
            "{}/state",
            printed["control_url"].as_str().unwrap_or_default()
        ))
        .call()
        .map(|response| response.status().as_u16());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        state.ok(),
        Some(200),
        "the binary serves its control API: {printed}"
    );
    let keys = |value: &Value| -> Vec<String> {
        value
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&printed), keys(sandbox().ready_line()));
    assert_eq!(printed["fault_seed"], 7);
    assert_eq!(printed["watched_folders"][0]["name"], "incoming");

    let written = std::fs::read_to_string(&env_file).expect("env file");
    let mode = std::fs::metadata(&env_file)
        .expect("env file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the env file holds credentials");
    for (name, key) in [
        ("DAM_BASE_URL", "dam_url"),
        ("MAILGUN_API_KEY", "mailgun_api_key"),
    ] {
        let value = printed[key].as_str().expect("ready value");
        assert!(
            written.contains(&format!("export {name}='{value}'\n")),
            "{written}"
        );
    }
    let watched = printed["watched_folder_ids"][0].as_str().expect("watched");
    assert!(
        written.contains(&format!("export BOX_WATCHED_FOLDER_ID='{watched}'")),
        "{written}"
    );
    std::fs::write(dir.path().join("ready.json"), &line).expect("ready file");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("env")
        .arg(dir.path().join("ready.json"))
        .output()
        .expect("sandbox env");
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), written);
}

#[test]
fn demo_scenario_loads() {
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.yaml");
    let media = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/media/bigbuckbunny.mp4");
    assert!(
        media.is_file(),
        "fixture {} is absent (../shared/fixtures/media holds the real media the demo scenario names)",
        media.display()
    );
    let loaded = sandbox::scenario::load(Some(&scenario)).expect("demo scenario parses");
    let campaign = &loaded.scenario.dam.campaigns[0];
    assert_eq!(campaign.number, "C-2026-0142");
    assert_eq!(campaign.masters.len(), 3);
}

#[test]
fn tokens_and_sessions_expire_after_the_configured_lifetime() {
    let server = Launch::new()
        .args(["--token-lifetime-secs", "1", "--import-delay-ms", "0"])
        .start();
    let ready = server.ready();
    assert_eq!(ready.watched_folders[0].name, "incoming");
    assert!(ready.campaigns.is_empty());
    let app = load_box_app(&ready.box_app_config).expect("app config");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS512);
    header.kid = Some(app.public_key_id.clone());
    let claims = json!({
        "iss": app.client_id, "sub": app.enterprise_id, "box_sub_type": "enterprise",
        "aud": "https://api.box.com/oauth2/token", "jti": uuid::Uuid::new_v4().to_string(),
        "exp": jiff::Timestamp::now().as_second() + 30,
    });
    let signed = jsonwebtoken::encode(&header, &claims, &app.encoding_key).expect("sign");
    let mut response = agent()
        .post(&ready.oauth2_url)
        .send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", signed.as_str()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ])
        .expect("token");
    assert_eq!(response.status().as_u16(), 200);
    let token = body_json(&mut response)["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let get = || {
        agent()
            .get(format!(
                "{}/2.0/folders/{}/items",
                ready.base_url, ready.watched_folder_ids[0]
            ))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("get")
    };
    assert_eq!(get().status().as_u16(), 200);
    let mut response = agent()
        .post(format!("{}/otmmapi/v6/sessions", ready.dam_url))
        .send_form([
            ("username", ready.dam_username.as_str()),
            ("password", ready.dam_password.as_str()),
        ])
        .expect("login");
    let digest = body_json(&mut response)["session_resource"]["session"]["message_digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    std::thread::sleep(Duration::from_millis(1_200));
    let response = get();
    assert_eq!(response.status().as_u16(), 401);
    let header = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(header.contains("expired"), "{header}");
    let response = agent()
        .get(format!(
            "{}/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES",
            ready.dam_url
        ))
        .header("otmmauthtoken", &digest)
        .call()
        .expect("dam");
    assert_eq!(response.status().as_u16(), 401);
}

#[test]
fn mailgun_events_list_accepted_messages_by_custom_message_id() {
    use base64::Engine;
    let base = format!("{}/v3/{}", ready().mailgun_url, ready().mailgun_domain);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("api:{}", ready().mailgun_api_key))
    );
    let set_mode = |mode: &str| {
        let response = agent()
            .post(format!("{}/config", ready().control_url))
            .send_json(json!({ "mailgun_events": mode }))
            .expect("config");
        assert_eq!(response.status().as_u16(), 200);
    };
    let send = |message_id: &str| -> Value {
        let mut response = agent()
            .post(format!("{base}/messages"))
            .header("Authorization", &auth)
            .send_form([
                ("from", "cs@example.com"),
                ("to", "ops@example.com"),
                ("subject", "events"),
                ("text", "hello"),
                ("h:Message-Id", message_id),
            ])
            .expect("send");
        assert_eq!(response.status().as_u16(), 200);
        body_json(&mut response)
    };
    let events = |message_id: &str, key: &str| -> (u16, Value) {
        let mut response = agent()
            .get(format!("{base}/events"))
            .header("Authorization", key)
            .query("event", "accepted")
            .query("message-id", message_id)
            .query("begin", "0")
            .query("ascending", "yes")
            .query("limit", "10")
            .call()
            .expect("events");
        let text = response.body_mut().read_to_string().expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (response.status().as_u16(), body)
    };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let custom = format!("<{unique}@{}>", ready().mailgun_domain);
    let bare = custom.trim_matches(['<', '>']).to_string();

    let reply = send(&custom);
    assert_eq!(
        reply["id"],
        custom.as_str(),
        "the send returns the custom id"
    );
    let state = sandbox().state();
    let email = state["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .find(|e| e["id"] == custom.as_str())
        .expect("recorded");
    assert_eq!(email["headers"]["Message-Id"], custom.as_str());

    for asked in [bare.as_str(), custom.as_str()] {
        let (status, page) = events(asked, &auth);
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{page}");
        assert_eq!(items[0]["event"], "accepted");
        assert_eq!(items[0]["recipient"], "ops@example.com");
        assert_eq!(items[0]["message"]["headers"]["message-id"], bare.as_str());
        assert!(page["paging"]["next"].as_str().is_some(), "{page}");
    }
    let (status, page) = events(&format!("nope-{bare}"), &auth);
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("api:wrong")
    );
    assert_eq!(events(&bare, &wrong).0, 401);

    set_mode("no_custom_ids");
    let other = format!(
        "<{}@{}>",
        uuid::Uuid::new_v4().simple(),
        ready().mailgun_domain
    );
    let reply = send(&other);
    assert_ne!(reply["id"], other.as_str(), "a generated id is returned");
    let (_, page) = events(other.trim_matches(['<', '>']), &auth);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{page}");

    set_mode("unavailable");
    assert_eq!(events(&bare, &auth).0, 503);
    set_mode("match");
    assert_eq!(events(&bare, &auth).0, 200);
}
