//! Integration tests of the Box fidelity features: chunked upload sessions, fault injection (status,
//! drop, delay, truncate, not_ready, `after`, seeded probabilities), the rate limit, restricted
//! folders and the JWT audience. Each test starts its own sandbox with [`Launch`] (settings and
//! faults are global to a sandbox).

use std::time::{Duration, Instant};

use base64::Engine;
use sandbox::keys::{load_box_app, BoxAppKeys};
use sandbox::launch::{Launch, Running};
use sandbox::server::ReadyInfo;
use serde_json::{json, Value};

use crate::util::{agent, body_json, sha1_hex};
use sha1::Digest;

/// A sandbox ([`Launch`]) and a Box access token for it.
struct Harness {
    sandbox: Running,
    token: String,
}

fn digest(data: &[u8]) -> String {
    format!(
        "sha={}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(data))
    )
}

/// Signs a JWT assertion with the sandbox's generated app config.
fn assertion(ready: &ReadyInfo, audience: &str) -> (String, BoxAppKeys) {
    let app = load_box_app(&ready.box_app_config).expect("app config");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(app.public_key_id.clone());
    let claims = json!({
        "iss": app.client_id, "sub": app.enterprise_id, "box_sub_type": "enterprise",
        "aud": audience, "jti": uuid::Uuid::new_v4().to_string(),
        "exp": jiff::Timestamp::now().as_second() + 30,
    });
    let signed = jsonwebtoken::encode(&header, &claims, &app.encoding_key).expect("sign");
    (signed, app)
}

fn request_token(ready: &ReadyInfo, audience: &str) -> (u16, Value) {
    let (signed, app) = assertion(ready, audience);
    let mut response = agent()
        .post(&ready.oauth2_url)
        .send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", signed.as_str()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ])
        .expect("token");
    (response.status().as_u16(), body_json(&mut response))
}

impl Harness {
    /// Starts a sandbox with an inline `scenario` and `sandbox serve` flags `args`.
    fn start(scenario: Option<&str>, args: &[&str]) -> Harness {
        let mut launch = Launch::new().args(args);
        if let Some(text) = scenario {
            launch = launch.scenario_text(text);
        }
        let sandbox = launch.start();
        let (status, body) = request_token(sandbox.ready(), "https://api.box.com/oauth2/token");
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().expect("token").to_owned();
        Harness { sandbox, token }
    }

    fn ready(&self) -> &ReadyInfo {
        self.sandbox.ready()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ready().base_url)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut response = agent()
            .get(self.url(path))
            .header("Authorization", self.auth())
            .call()
            .expect("request");
        (response.status().as_u16(), body_json(&mut response))
    }

    fn post_json(&self, path: &str, body: Value) -> (u16, Value, Option<String>) {
        self.send_json("POST", path, body)
    }

    fn put_json(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, body, _) = self.send_json("PUT", path, body);
        (status, body)
    }

    fn send_json(&self, method: &str, path: &str, body: Value) -> (u16, Value, Option<String>) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("Authorization", self.auth())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .expect("request");
        let mut response = agent().run(request).expect("request");
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), body_json(&mut response), retry)
    }

    fn control(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.sandbox.control_request(method, path, body.as_ref())
    }

    fn folder(&self, name: &str) -> String {
        let (status, body, _) = self.post_json(
            "/2.0/folders",
            json!({"name": name, "parent": {"id": self.ready().box_root_folder_id}}),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    fn put_part(
        &self,
        session: &str,
        data: &[u8],
        lo: u64,
        total: u64,
        digest_header: &str,
    ) -> (u16, Value) {
        let hi = lo + data.len() as u64 - 1;
        let mut response = agent()
            .put(self.url(&format!("/api/2.0/files/upload_sessions/{session}")))
            .header("Authorization", self.auth())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("bytes {lo}-{hi}/{total}"))
            .header("Digest", digest_header)
            .send(data)
            .expect("part");
        (response.status().as_u16(), body_json(&mut response))
    }

    fn commit(&self, session: &str, parts: &Value, whole: &str) -> (u16, Value, Option<String>) {
        let mut response = agent()
            .post(self.url(&format!("/api/2.0/files/upload_sessions/{session}/commit")))
            .header("Authorization", self.auth())
            .header("Digest", whole)
            .send_json(json!({"parts": parts}))
            .expect("commit");
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), body_json(&mut response), retry)
    }
}

const PART: u64 = 5_000_000;
const SIZE: u64 = 20_000_001;

fn content() -> Vec<u8> {
    (0..SIZE)
        .map(|i| ((i * 7 + i / 4099) % 251) as u8)
        .collect()
}

#[test]
fn chunked_session_lifecycle() {
    let h = Harness::start(None, &["--part-size", PART.to_string().as_str()]);
    let folder = h.folder("chunked");
    let data = content();

    // Too small, missing fields, unknown folder.
    let (status, body, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"folder_id": folder, "file_size": 19_999_999, "file_name": "x.bin"}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("file_size_too_small"))
    );
    let (status, body, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"file_size": SIZE, "file_name": "x.bin"}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_destination"))
    );
    let (status, _, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"folder_id": "999", "file_size": SIZE, "file_name": "x.bin"}),
    );
    assert_eq!(status, 404);

    let (status, session, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"folder_id": folder, "file_size": SIZE, "file_name": "Big.bin"}),
    );
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["type"], "upload_session");
    assert_eq!(session["part_size"], PART);
    assert_eq!(session["total_parts"], 5);
    assert_eq!(session["num_parts_processed"], 0);
    let id = session["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 32);
    let upload_part_url = session["session_endpoints"]["upload_part"]
        .as_str()
        .expect("url");
    assert_eq!(
        upload_part_url,
        format!("{}/2.0/files/upload_sessions/{id}", h.ready().upload_url)
    );
    assert!(session["session_endpoints"]["commit"]
        .as_str()
        .is_some_and(|u| u.ends_with("/commit")));

    // Range rules: misaligned start, wrong length, wrong total.
    let part0 = &data[..PART as usize];
    let (status, body) = h.put_part(&id, &part0[1..], 1, SIZE, &digest(&part0[1..]));
    assert_eq!(status, 416, "{body}");
    let (status, _) = h.put_part(&id, &part0[..100], 0, SIZE, &digest(&part0[..100]));
    assert_eq!(status, 416);
    let (status, _) = h.put_part(&id, part0, 0, SIZE + 1, &digest(part0));
    assert_eq!(status, 416);
    // Digest mismatch.
    let (status, body) = h.put_part(&id, part0, 0, SIZE, &digest(b"other"));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("digest_mismatch"))
    );

    // Parts out of order; the last one is shorter.
    let mut parts = Vec::new();
    for index in [4u64, 0, 2, 1, 3] {
        let lo = index * PART;
        let hi = ((index + 1) * PART).min(SIZE);
        let chunk = &data[lo as usize..hi as usize];
        let (status, body) = h.put_part(&id, chunk, lo, SIZE, &digest(chunk));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["part"]["offset"], lo);
        assert_eq!(body["part"]["size"], hi - lo);
        assert_eq!(body["part"]["sha1"], sha1_hex(chunk));
        parts.push(body["part"].clone());
    }
    // Same part again: idempotent; different bytes in the same range: 409.
    let (status, body) = h.put_part(&id, part0, 0, SIZE, &digest(part0));
    assert_eq!(status, 200);
    assert_eq!(body["part"], parts[1]);
    let other = vec![1u8; PART as usize];
    let (status, body) = h.put_part(&id, &other, 0, SIZE, &digest(&other));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "range_overlaps_existing_part");
    assert_eq!(body["context_info"]["conflicting_part"], parts[1]);

    let (status, listed) = h.get(&format!(
        "/api/2.0/files/upload_sessions/{id}/parts?limit=2&offset=1"
    ));
    assert_eq!(status, 200);
    assert_eq!(listed["total_count"], 5);
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["entries"][0]["offset"], PART);
    let (_, status_body) = h.get(&format!("/api/2.0/files/upload_sessions/{id}"));
    assert_eq!(status_body["num_parts_processed"], 5);

    // Commit: wrong parts -> 400; right parts -> 202 then 201.
    let (status, body, _) = h.commit(&id, &json!(parts[..4]), &digest(&data));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("parts_mismatch"))
    );
    let (status, _, retry) = h.commit(&id, &json!(parts), &digest(&data));
    assert_eq!((status, retry.as_deref()), (202, Some("1")));
    let (status, body, _) = h.commit(&id, &json!(parts), &digest(b"wrong"));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("digest_mismatch"))
    );
    let (status, files, _) = h.commit(&id, &json!(parts), &digest(&data));
    assert_eq!(status, 201, "{files}");
    assert_eq!(files["total_count"], 1);
    let file = &files["entries"][0];
    assert_eq!(file["name"], "Big.bin");
    assert_eq!(file["sha1"], sha1_hex(&data));
    assert_eq!(file["size"], SIZE);
    let file_id = file["id"].as_str().expect("id").to_owned();
    let (status, _) = h.get(&format!("/api/2.0/files/upload_sessions/{id}"));
    assert_eq!(status, 404, "a committed session is gone");
    let (_, state) = h.control("GET", "/state", None);
    let stored = state["box"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["id"] == file_id.as_str()))
        .expect("file in state")
        .clone();
    let on_disk = std::fs::read(stored["content_path"].as_str().expect("path")).expect("read");
    assert_eq!(sha1_hex(&on_disk), sha1_hex(&data));
    assert!(state["upload_sessions"]
        .as_array()
        .is_some_and(|s| s
            .iter()
            .any(|s| s["id"] == id.as_str()
                && s["status"]["committed"]["file_id"] == file_id.as_str())));

    // Name clash (case-insensitive) -> 409 with the conflicting file.
    let (status, body, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"folder_id": folder, "file_size": SIZE, "file_name": "BIG.bin"}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("item_name_in_use"))
    );
    assert_eq!(body["context_info"]["conflicts"]["id"], file_id.as_str());

    // New version through a session; then abort another one.
    let (status, session, _) = h.post_json(
        &format!("/api/2.0/files/{file_id}/upload_sessions"),
        json!({"file_size": SIZE}),
    );
    assert_eq!(status, 201, "{session}");
    let vid = session["id"].as_str().expect("id").to_owned();
    let mut version = data.clone();
    version[0] ^= 0xff;
    let mut vparts = Vec::new();
    for index in 0..5u64 {
        let lo = index * PART;
        let hi = ((index + 1) * PART).min(SIZE);
        let chunk = &version[lo as usize..hi as usize];
        let (status, body) = h.put_part(&vid, chunk, lo, SIZE, &digest(chunk));
        assert_eq!(status, 200, "{body}");
        vparts.push(body["part"].clone());
    }
    assert_eq!(h.commit(&vid, &json!(vparts), &digest(&version)).0, 202);
    let (status, files, _) = h.commit(&vid, &json!(vparts), &digest(&version));
    assert_eq!(status, 201, "{files}");
    assert_eq!(files["entries"][0]["id"], file_id.as_str());
    assert_eq!(files["entries"][0]["sha1"], sha1_hex(&version));

    let (status, session, _) = h.post_json(
        "/api/2.0/files/upload_sessions",
        json!({"folder_id": folder, "file_size": SIZE, "file_name": "aborted.bin"}),
    );
    assert_eq!(status, 201);
    let aid = session["id"].as_str().expect("id").to_owned();
    assert_eq!(h.put_part(&aid, part0, 0, SIZE, &digest(part0)).0, 200);
    let response = agent()
        .delete(h.url(&format!("/api/2.0/files/upload_sessions/{aid}")))
        .header("Authorization", h.auth())
        .call()
        .expect("abort");
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(h.put_part(&aid, part0, 0, SIZE, &digest(part0)).0, 404);
    let (_, stats) = h.control("GET", "/stats", None);
    assert_eq!(stats["upload_sessions_committed"], 2);
    assert_eq!(stats["upload_sessions_aborted"], 1);
}

fn simple_upload(h: &Harness, folder: &str, name: &str, data: &[u8]) -> (u16, Value) {
    let boundary = "fidelityboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        json!({"name": name, "parent": {"id": folder}})
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = agent()
        .post(format!("{}/api/2.0/files/content", h.ready().base_url))
        .header("Authorization", h.auth())
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .expect("upload");
    (response.status().as_u16(), body_json(&mut response))
}

#[test]
fn faults_drop_truncate_delay_not_ready_and_after() {
    let h = Harness::start(None, &["--fault-seed", "42"]);
    let folder = h.folder("faults");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let (status, body) = simple_upload(&h, &folder, "f.bin", &data);
    assert_eq!(status, 201, "{body}");
    let file_id = body["entries"][0]["id"].as_str().expect("id").to_owned();

    // drop: the client sees a transport error, not a status.
    let (status, added) = h.control(
        "POST",
        "/faults",
        Some(json!({"method": "GET", "path_prefix": format!("/2.0/files/{file_id}"), "kind": "drop", "count": 1})),
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["seed"], 42);
    let outcome = agent()
        .get(h.url(&format!("/2.0/files/{file_id}")))
        .header("Authorization", h.auth())
        .call();
    assert!(outcome.is_err(), "dropped connection: {outcome:?}");
    assert_eq!(h.get(&format!("/2.0/files/{file_id}")).0, 200);

    // not_ready on the download, then truncate on the download host.
    h.control(
        "POST",
        "/faults",
        Some(json!({"path_prefix": format!("/2.0/files/{file_id}/content"), "kind": "not_ready", "count": 1})),
    );
    let response = agent()
        .get(h.url(&format!("/2.0/files/{file_id}/content")))
        .header("Authorization", h.auth())
        .call()
        .expect("content");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    h.control(
        "POST",
        "/faults",
        Some(json!({"path_prefix": "/d/", "kind": "truncate", "truncate_after": 1000, "count": 1})),
    );
    let following: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let read = following
        .get(h.url(&format!("/2.0/files/{file_id}/content")))
        .header("Authorization", h.auth())
        .call()
        .and_then(|mut r| r.body_mut().read_to_vec());
    match read {
        Ok(bytes) => assert!(bytes.len() < data.len(), "truncated: {}", bytes.len()),
        Err(error) => eprintln!("truncated download failed as expected: {error}"),
    }
    let mut response = following
        .get(h.url(&format!("/2.0/files/{file_id}/content")))
        .header("Authorization", h.auth())
        .call()
        .expect("download");
    assert_eq!(
        sha1_hex(&response.body_mut().read_to_vec().expect("bytes")),
        sha1_hex(&data)
    );

    // delay.
    h.control(
        "POST",
        "/faults",
        Some(json!({"path_prefix": "/2.0/folders/", "kind": "delay", "delay_ms": 400, "count": 1})),
    );
    let started = Instant::now();
    assert_eq!(h.get(&format!("/2.0/folders/{folder}")).0, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // after: the upload lands although the client sees a 500 (and then a 409 with the same sha1).
    h.control(
        "POST",
        "/faults",
        Some(json!({"method": "POST", "path_prefix": "/api/2.0/files/content", "status": 500, "after": true, "count": 1})),
    );
    let (status, body) = simple_upload(&h, &folder, "landed.bin", &data);
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("internal_server_error"))
    );
    let (status, body) = simple_upload(&h, &folder, "landed.bin", &data);
    assert_eq!(status, 409);
    assert_eq!(body["context_info"]["conflicts"]["sha1"], sha1_hex(&data));

    // Status faults on the OTMM and token routes use their APIs' shapes.
    h.control(
        "POST",
        "/faults",
        Some(json!({"path_prefix": "/oauth2/token", "status": 503, "count": 1})),
    );
    let (status, body) = request_token(h.ready(), "https://api.box.com/oauth2/token");
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );

    let (_, stats) = h.control("GET", "/stats", None);
    assert_eq!(stats["faults_injected"], 6, "{stats}");
    assert_eq!(stats["faults_by_kind"]["drop"], 1);
    assert_eq!(stats["faults_by_kind"]["truncate"], 1);
    assert!(stats["routes"]
        .as_object()
        .is_some_and(|r| r.keys().any(|k| k.ends_with(" dropped"))));
    let (_, listed) = h.control("GET", "/faults", None);
    assert_eq!(
        listed["rules"],
        json!([]),
        "count-limited rules are used up"
    );
}

#[test]
fn seeded_probabilities_repeat() {
    let h = Harness::start(None, &[]);
    let folder = h.folder("seeded");
    let run = || {
        let (status, body) = h.control(
            "POST",
            "/faults",
            Some(json!({"seed": 7, "replace": true, "rules": [
                {"method": "GET", "path_prefix": "/2.0/folders/", "status": 503, "probability": 0.4},
                {"method": "GET", "path_prefix": "/2.0/folders/", "status": 429, "probability": 0.2, "count": 3},
            ]})),
        );
        assert_eq!(status, 201, "{body}");
        (0..30)
            .map(|_| h.get(&format!("/2.0/folders/{folder}")).0)
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first, run(), "same seed, same faults");
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
    assert!(first.iter().filter(|s| **s == 429).count() <= 3);
    let (status, _) = h.control("DELETE", "/faults", None);
    assert_eq!(status, 200);
}

#[test]
fn rate_limit_restricted_folders_and_audience() {
    let h = Harness::start(
        Some("box:\n  restricted_folders: [legal]\n"),
        &["--rate-limit", "3"],
    );
    let folder = h.ready().watched_folder_ids[0].clone();
    let statuses: Vec<(u16, Value, Option<String>)> = (0..6)
        .map(|_| {
            let mut response = agent()
                .get(h.url(&format!("/2.0/folders/{folder}/items")))
                .header("Authorization", h.auth())
                .call()
                .expect("list");
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (response.status().as_u16(), body_json(&mut response), retry)
        })
        .collect();
    let limited: Vec<_> = statuses.iter().filter(|(s, _, _)| *s == 429).collect();
    assert!(limited.len() >= 3, "{statuses:?}");
    let (_, body, retry) = limited[0];
    assert_eq!(body["code"], "rate_limit_exceeded");
    assert!(retry
        .as_deref()
        .is_some_and(|r| r.parse::<u64>().is_ok_and(|n| n >= 1)));
    let (status, config) = h.control(
        "POST",
        "/config",
        Some(json!({"rate_limit_per_second": null, "part_size": 1048576})),
    );
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["rate_limit"], Value::Null);
    assert_eq!(config["part_size"], 1_048_576);
    // The bucket as the client configures it: per minute with a burst, in any key order.
    let (status, config) = h.control(
        "POST",
        "/config",
        Some(json!({"rate_limit_burst": 4, "rate_limit_per_minute": 120})),
    );
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["rate_limit"], json!({"per_minute": 120, "burst": 4}));
    let (status, _) = h.control(
        "POST",
        "/config",
        Some(json!({"rate_limit_per_minute": null})),
    );
    assert_eq!(status, 200);
    let (status, _) = h.control("POST", "/config", Some(json!({"rate_limit_burst": 2})));
    assert_eq!(status, 400, "a burst without a rate");
    assert_eq!(h.get(&format!("/2.0/folders/{folder}/items")).0, 200);
    let (_, stats) = h.control("GET", "/stats", None);
    assert!(stats["rate_limited"].as_u64().unwrap_or(0) >= 3);

    // Restricted folder: 404 everywhere for the service account (Box does not reveal it).
    let (_, state) = h.control("GET", "/state", None);
    let legal = state["box"]["folders"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "legal"))
        .and_then(|f| f["id"].as_str())
        .expect("legal folder")
        .to_owned();
    let (status, body) = h.get(&format!("/2.0/folders/{legal}/items"));
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = simple_upload(&h, &legal, "x.bin", b"x");
    assert_eq!(status, 404);

    // The sandbox's own token URL is accepted as the JWT audience too; anything else is not.
    let (status, body) = request_token(h.ready(), &h.ready().oauth2_url);
    assert_eq!(status, 200, "{body}");
    let (status, body) = request_token(h.ready(), "https://example.com/token");
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

/// `GET /2.0/events` page: (status, body).
fn events(h: &Harness, position: &str, limit: u32) -> (u16, Value) {
    h.get(&format!(
        "/2.0/events?stream_type=changes&stream_position={position}&limit={limit}"
    ))
}

fn event_types(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|event| event["event_type"].as_str().expect("event_type").to_owned())
        .collect()
}

#[test]
fn events_stream_positions_paging_and_faults() {
    let h = Harness::start(None, &[]);
    let (status, now) = events(&h, "now", 100);
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["entries"], json!([]), "now: no entries");
    assert_eq!(now["chunk_size"], 0);
    let start = now["next_stream_position"].to_string();
    let folder = h.folder("events");
    let (status, upload) = simple_upload(&h, &folder, "a.bin", b"one");
    assert_eq!(status, 201, "{upload}");
    let file_id = upload["entries"][0]["id"].as_str().expect("id").to_owned();

    // In order, paged by `limit`, the source as it was after the change.
    let (status, first) = events(&h, &start, 1);
    assert_eq!(status, 200, "{first}");
    assert_eq!(event_types(&first), ["ITEM_CREATE"]);
    assert_eq!(first["entries"][0]["source"]["id"], folder.as_str());
    let next = first["next_stream_position"].to_string();
    let (_, second) = events(&h, &next, 100);
    assert_eq!(event_types(&second), ["ITEM_UPLOAD"]);
    let source = &second["entries"][0]["source"];
    assert_eq!(source["type"], "file");
    assert_eq!(source["parent"]["id"], folder.as_str());
    let path = source["path_collection"]["entries"]
        .as_array()
        .expect("path_collection");
    assert_eq!(path.first().expect("root")["id"], "0");
    assert_eq!(path.last().expect("parent")["id"], folder.as_str());
    let end = second["next_stream_position"].to_string();
    let (_, empty) = events(&h, &end, 100);
    assert_eq!(empty["entries"], json!([]));
    assert_eq!(
        empty["next_stream_position"].to_string(),
        end,
        "no new events"
    );

    // Lost, repeated and reordered events.
    let (status, config) = h.control(
        "POST",
        "/config",
        Some(json!({"events": {"drop_next": 1, "duplicate": true, "reorder": true}})),
    );
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["events"]["drop_next"], 1);
    let (status, _, _) = h.post_json(
        "/2.0/folders",
        json!({"name": "lost", "parent": {"id": folder}}),
    );
    assert_eq!(status, 201);
    let (status, moved) = h.put_json(&format!("/2.0/files/{file_id}"), json!({"name": "b.bin"}));
    assert_eq!(status, 200, "{moved}");
    let (_, repeated) = events(&h, &end, 100);
    assert_eq!(
        event_types(&repeated),
        ["ITEM_RENAME", "ITEM_RENAME"],
        "the folder's event was lost, the rename repeated: {repeated}"
    );
    assert_eq!(
        repeated["entries"][0]["event_id"],
        repeated["entries"][1]["event_id"]
    );

    // Expired and invalid positions.
    h.control("POST", "/config", Some(json!({"events": {"keep_last": 1}})));
    let (status, expired) = events(&h, &start, 100);
    assert_eq!(status, 400, "{expired}");
    assert_eq!(expired["code"], "bad_request");
    let (status, _) = events(&h, "not-a-position", 100);
    assert_eq!(status, 400);
    let (status, kept) = events(&h, "0", 100);
    assert_eq!(status, 200);
    assert_eq!(event_types(&kept), ["ITEM_RENAME"], "0: the events kept");
}
