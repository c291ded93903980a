//! The Box client against a scripted local HTTP server: what goes on the wire and how replies are handled.

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;

use super::auth::tests::{app_json, test_key, PASSPHRASE};
use super::auth::Claims;
use super::*;
use crate::config::{BoxConfig, WatchedFolder};
use crate::http::test_server::{Recorded, Reply, TestServer};

fn key() -> &'static (String, Vec<u8>) {
    static KEY: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(test_key)
}

fn app() -> BoxAppConfig {
    BoxAppConfig::from_json(&app_json(&key().0, PASSPHRASE)).unwrap()
}

fn config(server: &TestServer) -> BoxConfig {
    BoxConfig {
        base_url: server.url.clone(),
        upload_url: format!("{}/api", server.url),
        oauth2_url: format!("{}/oauth2/token", server.url),
        app_config_path: PathBuf::from("unused.json"),
        root_folder_id: "0".into(),
        watched_folders: vec![WatchedFolder {
            id: "77".into(),
            name: "incoming".into(),
            profile: None,
        }],
        processed_folder_name: "_PROCESSED".into(),
        errors_folder_name: "_errors".into(),
        max_requests_per_second: 1000.0,
        connect_timeout_secs: 5,
        read_timeout_secs: 5,
        chunked_upload_threshold_bytes: 50_000_000,
        max_retries: 3,
    }
}

fn client_with(server: &TestServer, adjust: impl FnOnce(&mut BoxConfig)) -> BoxClient {
    let mut cfg = config(server);
    adjust(&mut cfg);
    BoxClient::new(&cfg, app(), ureq::Agent::new_with_defaults())
        .unwrap()
        .with_retry_policy(RetryPolicy::fast(3))
}

fn client(server: &TestServer) -> BoxClient {
    client_with(server, |_| {})
}

/// Checks the assertion of a token request (signature with the public key, claims) and returns its claims.
fn verify_token_request(request: &Recorded) -> Claims {
    assert_eq!(
        request.form("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(request.form("client_id").as_deref(), Some("client-id-1"));
    assert_eq!(
        request.form("client_secret").as_deref(),
        Some("client-secret-value")
    );
    let assertion = request.form("assertion").unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[JWT_AUDIENCE]);
    validation.validate_exp = false;
    let decoded = jsonwebtoken::decode::<Claims>(
        &assertion,
        &DecodingKey::from_rsa_der(&key().1),
        &validation,
    )
    .expect("valid assertion");
    assert_eq!(decoded.header.kid.as_deref(), Some("kid42"));
    assert_eq!(decoded.claims.sub, "987654");
    decoded.claims
}

fn tokens_sent(server: &TestServer) -> Vec<Claims> {
    server
        .requests()
        .iter()
        .filter(|request| request.path() == "/oauth2/token")
        .map(verify_token_request)
        .collect()
}

fn token_reply(earlier: &[Recorded]) -> Reply {
    let number = earlier
        .iter()
        .filter(|request| request.path() == "/oauth2/token")
        .count()
        + 1;
    Reply::json(
        200,
        json!({"access_token": format!("T{number}"), "expires_in": 3600, "token_type": "bearer", "restricted_to": []}),
    )
}

fn file_json(id: &str, name: &str, sha1: &str, parent: &str) -> serde_json::Value {
    json!({"type": "file", "id": id, "name": name, "sha1": sha1, "size": 11,
        "file_version": {"type": "file_version", "id": format!("v{id}"), "sha1": sha1},
        "parent": {"type": "folder", "id": parent}})
}

const HELLO_SHA1: &str = "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"; // sha1("hello world")

#[test]
fn lists_every_page_with_one_token() {
    let server = TestServer::start(|request, earlier| {
        match (request.method.as_str(), request.path()) {
            ("POST", "/oauth2/token") => token_reply(earlier),
            ("GET", "/2.0/folders/77/items") if request.query().contains("marker=m%202") => {
                Reply::json(
                    200,
                    json!({"entries": [file_json("3", "b.mp4", "bb", "77")], "limit": 1000, "next_marker": null, "prev_marker": "x"}),
                )
            }
            ("GET", "/2.0/folders/77/items") => Reply::json(
                200,
                json!({"entries": [{"type": "folder", "id": "5", "name": "_errors", "etag": "0"},
                {"type": "file", "id": "2", "name": "a.mp4", "size": 1.0e3, "sha1": "aa", "unknown": true}],
                "limit": 1000, "next_marker": "m 2"}),
            ),
            _ => Reply::empty(404),
        }
    });
    let box_client = client(&server);
    let items = box_client.list_folder("77").unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0],
        BoxItem::Folder(BoxFolder {
            id: "5".into(),
            name: "_errors".into()
        })
    );
    let BoxItem::File(file) = &items[1] else {
        panic!("{items:?}")
    };
    assert_eq!(file.size, Some(1000));
    box_client.clone().list_folder("77").unwrap();
    assert_eq!(
        server.count("POST", "/oauth2/token"),
        1,
        "one token for the client's life"
    );
    let listings: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|request| request.method == "GET")
        .collect();
    assert_eq!(listings.len(), 4);
    assert!(listings[0].query().starts_with("usemarker=true&limit=1000&fields=type%2Cid%2Cname%2Csha1%2Cfile%5Fversion%2Csize%2Cparent%2Cmodified%5Fat"));
    assert!(!listings[0].query().contains("marker=m"));
    assert_eq!(listings[0].header("authorization"), Some("Bearer T1"));
    tokens_sent(&server);
}

#[test]
fn threads_share_one_token() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            token_reply(earlier)
        }
        _ => Reply::json(200, json!({"entries": [], "limit": 1000})),
    });
    let box_client = client(&server);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let box_client = box_client.clone();
            std::thread::spawn(move || box_client.list_folder("1").unwrap())
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(server.count("POST", "/oauth2/token"), 1);
}

#[test]
fn renews_the_token_once_on_401() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/2.0/files/5" if request.header("authorization") == Some("Bearer T1") => Reply::empty(401)
            .header(
                "www-authenticate",
                r#"Bearer realm="Service", error="invalid_token", error_description="expired""#,
            ),
        "/2.0/files/5" => Reply::json(200, file_json("5", "a.mp4", "aa", "77")),
        _ => Reply::empty(401),
    });
    let box_client = client(&server);
    let file = box_client.get_file("5").unwrap();
    assert_eq!(file.id, "5");
    let claims = tokens_sent(&server);
    assert_eq!(claims.len(), 2);
    assert_ne!(claims[0].jti, claims[1].jti);

    // Still 401 with a new token: one renewal only, then the error.
    let error = box_client.get_file("6").unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(server.count("GET", "/2.0/files/6"), 2);
    assert_eq!(server.count("POST", "/oauth2/token"), 3);
}

#[test]
fn retries_transient_statuses_and_not_others() {
    let server = TestServer::start(|request, earlier| {
        let earlier_same = earlier
            .iter()
            .filter(|other| other.path() == request.path())
            .count();
        match request.path() {
            "/oauth2/token" => token_reply(earlier),
            "/2.0/files/5" if earlier_same < 2 => Reply::json(
                503,
                json!({"type": "error", "status": 503, "code": "unavailable",
                "message": "Unavailable", "request_id": "r"}),
            )
            .header("retry-after", "0"),
            "/2.0/files/5" => Reply::json(200, file_json("5", "a.mp4", "aa", "77")),
            "/2.0/files/6" => Reply::drop_connection(),
            _ => Reply::json(
                404,
                json!({"type": "error", "status": 404, "code": "not_found", "message": "Not Found", "request_id": "abc"}),
            ),
        }
    });
    let box_client = client(&server);
    assert_eq!(box_client.get_file("5").unwrap().id, "5");
    assert_eq!(server.count("GET", "/2.0/files/5"), 3);
    let error = box_client.get_file("404").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Box API 404 not_found on GET /2.0/files/404: Not Found (request id abc)"
    );
    assert_eq!(server.count("GET", "/2.0/files/404"), 1);
    let error = box_client.get_file("6").unwrap_err();
    assert!(
        matches!(error, BoxError::Transport(_)) && error.is_transient(),
        "{error}"
    );
    assert_eq!(server.count("GET", "/2.0/files/6"), 4, "1 + max_retries");
}

#[test]
fn download_follows_the_redirect_without_authorization() {
    let download_host = TestServer::start(|request, _| {
        if request.header("authorization").is_some() {
            Reply::json(
                400,
                json!({"error": "authorization header must not be forwarded"}),
            )
        } else {
            Reply::bytes(200, b"hello world")
        }
    });
    let download_url = format!("{}/d/1/secret-capability/download", download_host.url);
    let server = TestServer::start(move |request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/2.0/files/9/content"
            if !earlier
                .iter()
                .any(|other| other.path() == "/2.0/files/9/content") =>
        {
            Reply::empty(202).header("retry-after", "0")
        }
        "/2.0/files/9/content" => Reply::empty(302).header("location", &download_url),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let bytes = box_client
        .download_to("9", Some(&HELLO_SHA1.to_uppercase()), &dest)
        .unwrap();
    assert_eq!(bytes, 11);
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
    assert_eq!(server.count("GET", "/2.0/files/9/content"), 2);
    let downloads = download_host.requests();
    assert_eq!(downloads.len(), 1);
    assert!(downloads[0].header("authorization").is_none());
    // Only the destination remains in the directory (no temporary leftovers).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn download_with_the_wrong_sha1_is_an_integrity_error() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        _ => Reply::bytes(200, b"hello world"),
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let error = box_client
        .download_to("9", Some("0000000000000000000000000000000000000000"), &dest)
        .unwrap_err();
    match error {
        BoxError::Integrity { expected, actual } => {
            assert_eq!(expected, "0000000000000000000000000000000000000000");
            assert_eq!(actual, HELLO_SHA1);
        }
        other => panic!("{other}"),
    }
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(
        server.count("GET", "/2.0/files/9/content"),
        2,
        "one more attempt on a mismatch"
    );
}

fn write_hello(dir: &Path) -> PathBuf {
    let path = dir.join("source.mp4");
    std::fs::write(&path, b"hello world").unwrap();
    path
}

#[test]
fn upload_sends_attributes_first_with_content_md5_and_length() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/api/2.0/files/content" => Reply::json(
            201,
            json!({"total_count": 1, "entries": [file_json("100", "Ab12CD_clip é.mp4", HELLO_SHA1, "77")]}),
        ),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let file = box_client
        .upload("77", "Ab12CD_clip é.mp4", &write_hello(dir.path()))
        .unwrap();
    assert_eq!(file.id, "100");
    assert_eq!(file.parent_id.as_deref(), Some("77"));
    let uploads: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|request| request.path() == "/api/2.0/files/content")
        .collect();
    assert_eq!(uploads.len(), 1);
    let upload = &uploads[0];
    assert_eq!(upload.header("content-md5"), Some(HELLO_SHA1));
    assert_eq!(
        upload
            .header("content-length")
            .and_then(|length| length.parse::<usize>().ok()),
        Some(upload.body.len())
    );
    assert!(upload.header("transfer-encoding").is_none());
    assert!(upload
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    let body = upload.body_text();
    let attributes = body.find("name=\"attributes\"").unwrap();
    let file_part = body.find("name=\"file\"; filename=\"Ab12CD_clip é.mp4\"; filename*=UTF-8''Ab12CD_clip%20%C3%A9.mp4").unwrap();
    assert!(attributes < file_part);
    assert!(
        body.contains(r#"{"name":"Ab12CD_clip é.mp4","parent":{"id":"77"}}"#),
        "{body}"
    );
    assert!(body.contains("\r\n\r\nhello world\r\n--"));
}

#[test]
fn upload_that_landed_despite_a_500_is_not_sent_again() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/api/2.0/files/content" => Reply::json(
            500,
            json!({"type": "error", "status": 500, "code": "internal_server_error", "message": "oops"}),
        ),
        "/2.0/folders/77/items" => Reply::json(
            200,
            json!({"entries": [file_json("100", "CLIP.mp4", HELLO_SHA1, "77")], "limit": 1000}),
        ),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let file = box_client
        .upload("77", "clip.mp4", &write_hello(dir.path()))
        .unwrap();
    assert_eq!(file.id, "100");
    assert_eq!(server.count("POST", "/api/2.0/files/content"), 1);
    assert_eq!(server.count("GET", "/2.0/folders/77/items"), 1);
}

#[test]
fn upload_after_a_dropped_connection_that_did_not_land_is_sent_again() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/api/2.0/files/content"
            if !earlier
                .iter()
                .any(|other| other.path() == "/api/2.0/files/content") =>
        {
            Reply::drop_connection()
        }
        "/api/2.0/files/content" => Reply::json(
            201,
            json!({"entries": [file_json("100", "clip.mp4", HELLO_SHA1, "77")]}),
        ),
        "/2.0/folders/77/items" => Reply::json(
            200,
            json!({"entries": [file_json("9", "other.mp4", "ff", "77")]}),
        ),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        box_client
            .upload("77", "clip.mp4", &write_hello(dir.path()))
            .unwrap()
            .id,
        "100"
    );
    assert_eq!(server.count("POST", "/api/2.0/files/content"), 2);
    let uploads: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|request| request.path() == "/api/2.0/files/content")
        .collect();
    assert_eq!(
        uploads[0].body, uploads[1].body,
        "the same body is sent again"
    );
}

#[test]
fn upload_conflicts_same_sha1_is_success_other_is_error() {
    let server = TestServer::start(|request, earlier| {
        match (request.path(), request.body_text().contains("same.mp4")) {
            ("/oauth2/token", _) => token_reply(earlier),
            ("/api/2.0/files/content", same) => {
                let sha1 = if same {
                    HELLO_SHA1.to_uppercase()
                } else {
                    "ffffffffffffffffffffffffffffffffffffffff".to_string()
                };
                Reply::json(
                    409,
                    json!({"type": "error", "status": 409, "code": "item_name_in_use",
                "message": "Item with the same name already exists", "request_id": "r409",
                "context_info": {"conflicts": {"type": "file", "id": "42", "name": "x", "sha1": sha1,
                    "file_version": {"type": "file_version", "id": "43", "sha1": sha1}}}}),
                )
            }
            _ => Reply::empty(404),
        }
    });
    let box_client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let source = write_hello(dir.path());
    let existing = box_client.upload("77", "same.mp4", &source).unwrap();
    assert_eq!(
        (existing.id.as_str(), existing.parent_id.as_deref()),
        ("42", Some("77"))
    );
    let error = box_client
        .upload("77", "different.mp4", &source)
        .unwrap_err();
    assert_eq!(error.status(), Some(409));
    assert!(
        error.to_string().contains("item_name_in_use")
            && error.to_string().contains("existing file 42"),
        "{error}"
    );
    assert!(!error.is_transient());
}

#[test]
fn upload_at_the_chunked_threshold_is_unsupported_without_any_request() {
    let server = TestServer::start(|_, _| Reply::empty(500));
    let box_client = client_with(&server, |cfg| cfg.chunked_upload_threshold_bytes = 11);
    let dir = tempfile::tempdir().unwrap();
    let error = box_client
        .upload("77", "clip.mp4", &write_hello(dir.path()))
        .unwrap_err();
    assert!(matches!(error, BoxError::Unsupported(_)));
    assert!(
        error
            .to_string()
            .contains("chunked upload not yet supported")
            && error.to_string().contains("11 bytes >= threshold 11"),
        "{error}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn upload_text_with_a_taken_name_uploads_a_new_version() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/api/2.0/files/content" => Reply::json(
            409,
            json!({"type": "error", "status": 409, "code": "item_name_in_use",
            "message": "Item with the same name already exists",
            "context_info": {"conflicts": {"type": "file", "id": "42", "name": "a.error.txt", "sha1": "ff"}}}),
        ),
        "/api/2.0/files/42/content" => Reply::json(
            200,
            json!({"total_count": 1, "entries": [
            {"type": "file", "id": "42", "name": "a.error.txt", "sha1": "new", "file_version": {"type": "file_version", "id": "44", "sha1": "new"}}]}),
        ),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let file = box_client
        .upload_text("5", "a.error.txt", "problem: bad name\n")
        .unwrap();
    assert_eq!(
        (
            file.id.as_str(),
            file.file_version_id.as_deref(),
            file.parent_id.as_deref()
        ),
        ("42", Some("44"), Some("5"))
    );
    let version = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/api/2.0/files/42/content")
        .unwrap();
    assert!(version.body_text().contains(r#"{"name":"a.error.txt"}"#));
    assert!(version.body_text().contains("problem: bad name\n"));
}

#[test]
fn create_folder_returns_the_existing_folder_on_conflict() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/2.0/folders" if request.body_text().contains("\"new\"") => Reply::json(
            201,
            json!({"type": "folder", "id": "300", "name": "new", "parent": {"id": "0"}}),
        ),
        "/2.0/folders" => Reply::json(
            409,
            json!({"type": "error", "status": 409, "code": "item_name_in_use",
            "message": "Item with the same name already exists",
            "context_info": {"conflicts": [{"type": "folder", "id": "200", "sequence_id": "0", "etag": "0", "name": "2026-11-10"}]}}),
        ),
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    assert_eq!(
        box_client.create_folder("0", "new").unwrap(),
        BoxFolder {
            id: "300".into(),
            name: "new".into()
        }
    );
    assert_eq!(
        box_client.create_folder("0", "2026-11-10").unwrap(),
        BoxFolder {
            id: "200".into(),
            name: "2026-11-10".into()
        }
    );
    let create = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/2.0/folders")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&create.body).unwrap(),
        json!({"name": "new", "parent": {"id": "0"}})
    );
}

#[test]
fn move_with_a_name_clash_retries_once_with_a_unique_name() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/oauth2/token" => token_reply(earlier),
        "/2.0/files/5" => {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            if ["a.mp4", "b.mp4", "5_b.mp4"]
                .iter()
                .any(|taken| body["name"] == *taken)
            {
                Reply::json(
                    409,
                    json!({"type": "error", "status": 409, "code": "item_name_in_use", "message": "taken"}),
                )
            } else {
                Reply::json(
                    200,
                    json!({"type": "file", "id": "5", "name": body["name"], "parent": {"type": "folder", "id": body["parent"]["id"]}}),
                )
            }
        }
        _ => Reply::empty(404),
    });
    let box_client = client(&server);
    let moved = box_client.move_file("5", "900", "a.mp4").unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.parent_id.as_deref()),
        ("5_a.mp4", Some("900"))
    );
    let error = box_client.move_file("5", "900", "b.mp4").unwrap_err();
    assert_eq!(error.status(), Some(409));
    assert_eq!(server.count("PUT", "/2.0/files/5"), 4);
}

#[test]
fn token_exp_rejection_retries_with_the_server_clock() {
    let server_clock = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&server_clock)
        .unwrap();
    let server = TestServer::start(move |request, earlier| {
        match request.path() {
        "/oauth2/token" if !earlier.iter().any(|other| other.path() == "/oauth2/token") => {
            Reply::json(400, json!({"error": "invalid_grant", "error_description": "Please check the 'exp' claim."}))
                .header("date", &date)
        }
        "/oauth2/token" => token_reply(earlier),
        _ => Reply::json(200, file_json("5", "a", "aa", "1")),
    }
    });
    let box_client = client(&server);
    box_client.get_file("5").unwrap();
    let claims = tokens_sent(&server);
    assert_eq!(claims.len(), 2);
    let now = jiff::Timestamp::now().as_second();
    assert!(claims[0].exp <= now + 46);
    assert!(
        claims[1].exp >= now + 3600 + 40,
        "{} vs {now}",
        claims[1].exp
    );
}

#[test]
fn refused_credentials_are_an_auth_error_without_secrets() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            400,
            json!({"error": "invalid_client", "error_description": "The client credentials are invalid"}),
        )
    });
    let box_client = client(&server);
    let error = box_client.list_folder("1").unwrap_err();
    assert!(matches!(error, BoxError::Auth(_)), "{error}");
    let shown = format!("{error} {error:?} {box_client:?}");
    assert!(shown.contains("invalid_client"));
    for secret in ["client-secret-value", PASSPHRASE, "PRIVATE KEY", "MII"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(
        server.count("POST", "/oauth2/token"),
        1,
        "a 400 is not retried"
    );
}
