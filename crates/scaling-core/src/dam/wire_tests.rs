//! The OTMM client against a scripted local HTTP server.

use serde_json::json;

use super::*;
use crate::config::{DamApi, DamAuth, DamConfig, ImportCompletion, OAuthGrant, ValueShape};
use crate::http::test_server::{Recorded, Reply, TestServer};
use crate::secret::Secret;

fn config(server: &TestServer, auth: DamAuth) -> DamConfig {
    DamConfig {
        connect_timeout_secs: 5,
        read_timeout_secs: 5,
        content_timeout_secs: 5,
        import_job_timeout_secs: 2,
        import_landing_secs: 2,
        max_retries: 2,
        max_requests_per_second: 1000.0,
        ..DamConfig::new(format!("{}/", server.url), auth)
    }
}

fn session_auth() -> DamAuth {
    DamAuth::Session {
        username: "svc-scaling".into(),
        password: Secret::new("pa ss&word".into()),
    }
}

fn client(server: &TestServer) -> DamClient {
    DamClient::new(
        &config(server, session_auth()),
        ureq::Agent::new_with_defaults(),
    )
    .with_retry_policy(RetryPolicy::fast(2))
}

fn login_reply(earlier: &[Recorded]) -> Reply {
    let number = earlier
        .iter()
        .filter(|request| request.path() == "/otmmapi/v6/sessions")
        .count()
        + 1;
    Reply::json(
        200,
        json!({"session_resource": {"session": {"id": 471542185, "login_name": "svc-scaling",
            "message_digest": format!("digest{number}"), "user_id": "1001", "role_name": "Admin"}}}),
    )
    .header("set-cookie", &format!("JSESSIONID=JS{number}; Path=/otmmapi; HttpOnly"))
    .header("set-cookie", "LB=node2; Path=/")
}

fn authenticated(request: &Recorded) -> bool {
    let Some(token) = request.header("otmmauthtoken") else {
        return false;
    };
    let number = token.trim_start_matches("digest");
    request.header("cookie").is_some_and(|cookie| {
        cookie.contains(&format!("JSESSIONID=JS{number}")) && cookie.contains("LB=node2")
    })
}

fn folder_reply(id: &str, name: &str) -> Reply {
    Reply::json(
        200,
        json!({"folder_resource": {"folder": folder(id, name)}}),
    )
}

fn session_expired() -> Reply {
    Reply::json(
        401,
        json!({"exception_body": {"http_response_code": 401, "message": "Session expired"}}),
    )
}

fn not_found() -> Reply {
    Reply::json(
        404,
        json!({"exception_body": {"http_response_code": 404, "message": "Not found", "debug_message": ""}}),
    )
}

fn folder(id: &str, name: &str) -> serde_json::Value {
    json!({"asset_id": id, "name": name, "container_type_id": "ARTESIA.BASIC.FOLDER", "data_type": "CONTAINER"})
}

#[test]
fn session_login_cookies_tokens_and_folder_update() {
    let server = TestServer::start(|request, earlier| {
        if request.path() == "/otmmapi/v6/sessions" {
            return login_reply(earlier);
        }
        if !authenticated(request) {
            return Reply::json(
                401,
                json!({"exception_body": {"http_response_code": 401, "message": "Session invalid"}}),
            );
        }
        let mutating = request.method != "GET";
        if mutating && request.header("x-requested-by") != Some("471542185") {
            return Reply::json(
                400,
                json!({"exception_body": {"http_response_code": 400, "message": "CSRF"}}),
            );
        }
        match (request.method.as_str(), request.path()) {
            ("GET", "/otmmapi/v6/folders/F1") => folder_reply("F1", "C-1 Camp"),
            ("PUT", "/otmmapi/v6/assets/F1/state") => Reply::json(
                200,
                json!({"asset_resource": {"asset": folder("F1", "C-1 Camp")}}),
            ),
            ("PATCH", "/otmmapi/v6/folders/F1") => folder_reply("F1", "C-1 Camp"),
            _ => not_found(),
        }
    });
    let dam = client(&server);
    let got = dam.get_folder("F1").unwrap();
    assert_eq!((got.id.as_str(), got.name.as_str()), ("F1", "C-1 Camp"));
    dam.set_folder_field("F1", "FERRERO.FIELD.CAMPAIGN STATUS", "A2")
        .unwrap();

    let requests = server.requests();
    let login = &requests[0];
    assert_eq!(login.form("username").as_deref(), Some("svc-scaling"));
    assert_eq!(login.form("password").as_deref(), Some("pa ss&word"));
    let calls: Vec<(String, String)> = requests[1..]
        .iter()
        .map(|request| (request.method.clone(), request.path().to_string()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET".to_string(), "/otmmapi/v6/folders/F1".to_string()),
            ("PUT".to_string(), "/otmmapi/v6/assets/F1/state".to_string()),
            ("PATCH".to_string(), "/otmmapi/v6/folders/F1".to_string()),
            ("PUT".to_string(), "/otmmapi/v6/assets/F1/state".to_string()),
        ]
    );
    assert_eq!(requests[2].form("action").as_deref(), Some("lock"));
    assert_eq!(requests[4].form("action").as_deref(), Some("unlock"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&requests[3].body).unwrap(),
        folder_field_patch("FERRERO.FIELD.CAMPAIGN STATUS", "A2", ValueShape::Plain)
    );
    assert!(requests[1].header("x-requested-by").is_none(), "not on GET");
}

#[test]
fn logs_in_again_once_on_401() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        _ if request.header("otmmauthtoken") == Some("digest1") => session_expired(),
        "/otmmapi/v6/folders/F1" if authenticated(request) => folder_reply("F1", "C-1"),
        _ => session_expired(),
    });
    let dam = client(&server);
    assert_eq!(dam.get_folder("F1").unwrap().id, "F1");
    assert_eq!(server.count("POST", "/otmmapi/v6/sessions"), 2);
    let error = dam.get_folder("F2").unwrap_err();
    assert!(matches!(error, DamError::Auth(_)), "{error}");
    assert_eq!(server.count("POST", "/otmmapi/v6/sessions"), 3);
    assert!(!format!("{error:?} {dam:?}").contains("pa ss&word"));
}

/// ureq's cookie store: path rules, cookies of later replies kept, a new login starting without
/// the refused session's cookies, and no cookie value in errors or `Debug`.
#[test]
fn session_cookies_are_kept_by_path_and_replaced_at_each_login() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => {
            login_reply(earlier).header("set-cookie", "ELSEWHERE=x1; Path=/elsewhere")
        }
        _ if request.header("otmmauthtoken") == Some("digest1") => session_expired(),
        "/otmmapi/v6/folders/F1" if authenticated(request) => {
            folder_reply("F1", "C-1").header("set-cookie", "STICKY=s2; Path=/otmmapi")
        }
        "/otmmapi/v6/folders/F2" if authenticated(request) => folder_reply("F2", "C-2"),
        _ => session_expired(),
    });
    let dam = client(&server);
    assert_eq!(dam.get_folder("F1").unwrap().id, "F1");
    assert_eq!(dam.get_folder("F2").unwrap().id, "F2");
    let requests = server.requests();
    let cookie = |index: usize| requests[index].header("cookie").unwrap_or("").to_string();
    // login 1, GET F1 (401), login 2, GET F1, GET F2
    assert_eq!(
        requests
            .iter()
            .map(|request| request.path())
            .collect::<Vec<_>>(),
        [
            "/otmmapi/v6/sessions",
            "/otmmapi/v6/folders/F1",
            "/otmmapi/v6/sessions",
            "/otmmapi/v6/folders/F1",
            "/otmmapi/v6/folders/F2"
        ]
    );
    assert!(cookie(1).contains("JSESSIONID=JS1"), "{}", cookie(1));
    assert!(
        !cookie(2).contains("JSESSIONID"),
        "the new login does not send the refused session's cookie: {}",
        cookie(2)
    );
    let after = cookie(4);
    assert!(
        after.contains("JSESSIONID=JS2")
            && after.contains("LB=node2")
            && after.contains("STICKY=s2"),
        "{after}"
    );
    assert!(!after.contains("JS1"), "{after}");
    assert!(
        !after.contains("ELSEWHERE"),
        "a cookie for another path: {after}"
    );
    let error = dam.get_folder("F3").unwrap_err();
    assert!(!format!("{error} {error:?} {dam:?}").contains("JS2"));
}

#[test]
fn failed_patch_still_unlocks() {
    let server = TestServer::start(|request, earlier| {
        match (request.method.as_str(), request.path()) {
            (_, "/otmmapi/v6/sessions") => login_reply(earlier),
            ("PUT", "/otmmapi/v6/assets/F1/state") => Reply::empty(200),
            ("PATCH", "/otmmapi/v6/folders/F1") => Reply::json(
                400,
                json!({"exception_body": {"http_response_code": 400, "message": "Field is not editable"}}),
            ),
            _ => not_found(),
        }
    });
    let dam = client(&server);
    let error = dam.set_folder_field("F1", "F", "A2").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the DAM refused the status update of folder F1: OTMM API 400 on PATCH /otmmapi/v6/folders/F1: Field is not editable"
    );
    let DamError::Dialect { fix, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fix, "set dam.api.status_value_shape: domain_value");
    let actions: Vec<String> = server
        .requests()
        .iter()
        .filter(|request| request.path() == "/otmmapi/v6/assets/F1/state")
        .filter_map(|request| request.form("action"))
        .collect();
    assert_eq!(actions, vec!["lock", "unlock"]);
}

fn query_param(request: &Recorded, name: &str) -> Option<String> {
    request.query().split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[test]
fn search_pages_with_after_and_stops_at_the_total() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/search/text" => {
            let after: usize = query_param(request, "after").unwrap().parse().unwrap();
            let limit: usize = query_param(request, "limit").unwrap().parse().unwrap();
            let end = (after + limit.min(2)).min(5);
            let assets: Vec<serde_json::Value> = (after..end)
                .map(|index| folder(&format!("F{index}"), &format!("C-{index}")))
                .collect();
            let ids: Vec<String> = (after..end).map(|index| format!("F{index}")).collect();
            Reply::json(
                200,
                json!({"search_result_resource": {
                "search_result": {"asset_id_list": ids, "hit_count": end - after, "total_hit_count": 5, "offset": after},
                "asset_list": assets}}),
            )
        }
        _ => not_found(),
    });
    let dam = client(&server);
    let found = dam
        .search_folders_by_field(
            "FERRERO.FIELD.CAMPAIGN STATUS",
            "ARTESIA.OPERATOR.CHAR.CONTAINS",
            "A1",
            10,
        )
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|asset| asset.id.as_str())
            .collect::<Vec<_>>(),
        ["F0", "F1", "F2", "F3", "F4"]
    );
    assert!(found.iter().all(|asset| asset.is_folder));
    assert_eq!(server.count("GET", "/otmmapi/v6/search/text"), 3);
    let first = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/otmmapi/v6/search/text")
        .unwrap();
    assert!(
        !first.query().contains(['{', '[', '"', ' ', ':']),
        "{}",
        first.query()
    );
    let condition: serde_json::Value =
        serde_json::from_str(&query_param(&first, "search_condition_list").unwrap()).unwrap();
    assert_eq!(
        condition,
        field_condition(
            "FERRERO.FIELD.CAMPAIGN STATUS",
            "ARTESIA.OPERATOR.CHAR.CONTAINS",
            "A1"
        )
    );
    assert_eq!(query_param(&first, "keyword_query").as_deref(), Some("*"));

    let limited = dam.search_folders_by_field("F", "O", "A1", 3).unwrap();
    assert_eq!(limited.len(), 3);
    assert!(dam
        .search_folders_by_field("F", "O", "A1", 0)
        .unwrap()
        .is_empty());
}

#[test]
fn children_are_paged_and_found_by_exact_name() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/folders/F1/children" => {
            assert_eq!(
                query_param(request, "load_type").as_deref(),
                Some("metadata")
            );
            let after: usize = query_param(request, "after").unwrap().parse().unwrap();
            let limit: usize = query_param(request, "limit").unwrap().parse().unwrap();
            let list: Vec<serde_json::Value> = (after..(after + limit).min(150))
                .map(|index| json!({"asset_id": format!("A{index}"), "name": format!("file{index}.mp4"), "mime_type": "video/mp4", "content_size": index}))
                .collect();
            Reply::json(200, json!({"folder_children": {"asset_list": list}}))
        }
        _ => not_found(),
    });
    let dam = client(&server);
    let children = dam.list_children("F1").unwrap();
    assert_eq!(children.len(), 150);
    assert_eq!(server.count("GET", "/otmmapi/v6/folders/F1/children"), 2);
    let found = dam
        .find_asset_in_folder("F1", "file149.mp4")
        .unwrap()
        .unwrap();
    assert_eq!((found.id.as_str(), found.content_size), ("A149", Some(149)));
    assert!(dam
        .find_asset_in_folder("F1", "FILE149.mp4")
        .unwrap()
        .is_none());
}

#[test]
fn import_sends_the_four_parts_in_order_and_jobs_are_followed() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/assets" => Reply::json(202, json!({"job_handle": {"job_id": 1125}})),
        "/otmmapi/v6/jobs/1125/assets" => {
            let polls = earlier
                .iter()
                .filter(|other| other.path() == "/otmmapi/v6/jobs/1125/assets")
                .count();
            let list = if polls == 0 {
                json!([])
            } else {
                json!([{"asset_id": "N1", "name": "Ab12CD_clip.mp4"}])
            };
            Reply::json(200, json!({"assets_resource": {"asset_list": list}}))
        }
        _ => not_found(),
    });
    let dam = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.mp4");
    std::fs::write(&path, b"video-bytes").unwrap();
    let representation = json!({"asset_resource": {"asset": {"metadata_model_id": "M", "security_policy_list": [{"id": 2}]}}});
    let job = dam
        .import_asset(
            "FINAL",
            &path,
            "Ab12CD_clip.mp4",
            "video/mp4",
            &representation,
        )
        .unwrap();
    assert_eq!(job, "1125");
    let import = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/otmmapi/v6/assets")
        .unwrap();
    assert_eq!(import.header("x-requested-by"), Some("471542185"));
    assert_eq!(
        import
            .header("content-length")
            .and_then(|length| length.parse::<usize>().ok()),
        Some(import.body.len())
    );
    let body = import.body_text();
    let positions: Vec<usize> = [
        "name=\"asset_representation\"\r\nContent-Type: application/json\r\n\r\n{\"asset_resource\"",
        "name=\"parent_folder_id\"\r\n\r\nFINAL\r\n",
        "name=\"manifest\"\r\nContent-Type: application/json\r\n\r\n{\"upload_manifest\":{\"master_files\":[{\"file\":{\"file_name\":\"Ab12CD_clip.mp4\",\"file_type\":\"video/mp4\"}}]}}",
        "name=\"files\"; filename=\"Ab12CD_clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\nvideo-bytes\r\n",
    ]
    .iter()
    .map(|part| body.find(part).unwrap_or_else(|| panic!("missing {part} in {body}")))
    .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{positions:?}"
    );

    assert_eq!(dam.job_state("1125").unwrap(), JobState::InProgress);
    assert_eq!(
        dam.job_state("1125").unwrap(),
        JobState::Completed {
            asset_ids: vec!["N1".into()]
        }
    );
}

#[test]
fn oauth2_bearer_and_requested_by_client_id() {
    let server = TestServer::start(|request, _| match request.path() {
        "/otds/token" => {
            assert_eq!(
                request.form("grant_type").as_deref(),
                Some("client_credentials")
            );
            assert_eq!(request.form("client_id").as_deref(), Some("scaling"));
            assert_eq!(request.form("client_secret").as_deref(), Some("cs-value"));
            Reply::json(
                200,
                json!({"access_token": "BEARER1", "expires_in": 3600, "token_type": "Bearer"}),
            )
        }
        _ if request.header("authorization") != Some("Bearer BEARER1") => Reply::empty(401),
        "/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES" => Reply::json(
            200,
            json!({"lookup_domain_resource": {"lookup_domain": {
            "domainId": "FERRERO.DOMAIN.LANGUAGES", "domainValues": [{"field_value": {"type": "string", "value": "EN"}, "display_value": "English "}]}}}),
        ),
        "/otmmapi/v6/assets/F1/state" if request.header("x-requested-by") == Some("scaling") => {
            Reply::empty(200)
        }
        "/otmmapi/v6/folders/F1" => Reply::empty(200),
        _ => not_found(),
    });
    let auth = DamAuth::OAuth2 {
        auth_url: format!("{}/otds/token", server.url),
        client_id: "scaling".into(),
        client_secret: Secret::new("cs-value".into()),
        grant: OAuthGrant::ClientCredentials,
    };
    let dam = DamClient::new(&config(&server, auth), ureq::Agent::new_with_defaults())
        .with_retry_policy(RetryPolicy::fast(1));
    assert_eq!(
        dam.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap(),
        vec![DomainValue {
            value: "EN".into(),
            display: "English".into()
        }]
    );
    dam.set_folder_field("F1", "F", "A3").unwrap();
    assert_eq!(server.count("POST", "/otds/token"), 1);
    let lookup = server
        .requests()
        .into_iter()
        .find(|request| request.path().starts_with("/otmmapi/v6/lookupdomains/"))
        .unwrap();
    assert_eq!(
        lookup.path(),
        "/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES"
    );
}

/// A DAM whose master M1's content answers `first` once, then its 12 bytes; M2's content answers
/// `m2` every time.
fn flaky_download_server(first: fn() -> Reply, m2: fn() -> Reply) -> TestServer {
    TestServer::start(move |request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/assets/M1/contents"
            if !earlier.iter().any(|other| other.path() == request.path()) =>
        {
            first()
        }
        "/otmmapi/v6/assets/M1/contents" => Reply::bytes(200, b"master-bytes"),
        "/otmmapi/v6/assets/M2/contents" => m2(),
        _ => not_found(),
    })
}

/// Downloads M1 from `server` into a new temporary folder and checks its bytes.
fn download_m1(server: &TestServer) -> (DamClient, tempfile::TempDir) {
    let dam = client(server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.mp4");
    assert_eq!(dam.download_to("M1", &dest).unwrap(), 12);
    assert_eq!(std::fs::read(&dest).unwrap(), b"master-bytes");
    (dam, dir)
}

#[test]
fn download_restarts_after_a_dropped_connection() {
    let server = flaky_download_server(Reply::drop_connection, not_found);
    let (dam, dir) = download_m1(&server);
    let error = dam
        .download_to("M2", &dir.path().join("missing.mp4"))
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(!dir.path().join("missing.mp4").exists());
}

#[test]
fn download_starts_over_after_a_body_cut_off_mid_transfer() {
    let server = flaky_download_server(
        || Reply::cut_off(12, b"master"),
        || Reply::cut_off(12, b"mas"),
    );
    let (dam, dir) = download_m1(&server);
    assert_eq!(server.count("GET", "/otmmapi/v6/assets/M1/contents"), 2);
    // Cut off every time: Interrupted (unreachable) after the retries, nothing left behind.
    let cut = dir.path().join("cut.mp4");
    let error = dam.download_to("M2", &cut).unwrap_err();
    assert!(matches!(error, DamError::Interrupted { .. }), "{error:?}");
    assert!(error.is_unreachable());
    assert!(server.count("GET", "/otmmapi/v6/assets/M2/contents") > 1);
    assert!(!cut.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file"
    );
}

fn languages_server(fail: std::sync::Arc<std::sync::atomic::AtomicBool>) -> TestServer {
    TestServer::start(move |request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES" => {
            if fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Reply::empty(503);
            }
            Reply::json(
                200,
                json!({"lookup_domain_resource": {"lookup_domain": {"domainId": "FERRERO.DOMAIN.LANGUAGES",
                "domainValues": [{"field_value": {"type": "string", "value": "IT"}, "display_value": "Italian"}]}}}),
            )
        }
        _ => not_found(),
    })
}

fn hours(hours: u64) -> std::time::Duration {
    std::time::Duration::from_secs(hours * 3600)
}

#[test]
fn lookup_domains_are_cached_across_passes_in_a_private_file() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = languages_server(fail.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = "/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES";
    for _ in 0..3 {
        // One client per pass, as separate processes would have.
        let dam = client(&server).with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(24));
        let values = dam.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap();
        assert_eq!(values[0].display, "Italian");
        dam.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap();
    }
    assert_eq!(server.count("GET", path), 1);
    let file = dir.path().join(LOOKUP_CACHE_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // TTL 0: always asked.
    let dam = client(&server).with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(0));
    dam.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap();
    dam.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap();
    assert_eq!(server.count("GET", path), 3);

    // Expired entry and the DAM down: the error, and the old values for a caller whose policy
    // (strict_mode off) allows them.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut cache: Value = serde_json::from_str(&text).unwrap();
    cache["domains"]["FERRERO.DOMAIN.LANGUAGES"]["fetched_at"] = json!(0);
    std::fs::write(&file, cache.to_string()).unwrap();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let strict = client(&server).with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(24));
    let error = strict
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    let lenient = client(&server).with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(24));
    assert!(lenient.lookup_domain("FERRERO.DOMAIN.LANGUAGES").is_err());
    assert_eq!(
        lenient
            .expired_lookup_domain("FERRERO.DOMAIN.LANGUAGES")
            .unwrap()[0]
            .value,
        "IT"
    );
    assert_eq!(
        client(&server).expired_lookup_domain("FERRERO.DOMAIN.LANGUAGES"),
        None,
        "no cache, no expired values"
    );
    // Back up: the expired entry is refreshed.
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = server.count("GET", path);
    strict.lookup_domain("FERRERO.DOMAIN.LANGUAGES").unwrap();
    assert_eq!(server.count("GET", path), before + 1);
    let refreshed: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        refreshed["domains"]["FERRERO.DOMAIN.LANGUAGES"]["fetched_at"]
            .as_i64()
            .unwrap()
            > 0
    );
}

#[test]
fn the_lookup_cache_of_another_dam_is_not_used() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first = languages_server(fail.clone());
    let second = languages_server(fail);
    let dir = tempfile::tempdir().unwrap();
    client(&first)
        .with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(24))
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap();
    client(&second)
        .with_lookup_cache(&dir.path().join(LOOKUP_CACHE_FILE), hours(24))
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap();
    assert_eq!(
        second.count("GET", "/otmmapi/v6/lookupdomains/FERRERO.DOMAIN.LANGUAGES"),
        1
    );
}

fn client_with(server: &TestServer, api: DamApi) -> DamClient {
    DamClient::new(
        &DamConfig {
            api,
            ..config(server, session_auth())
        },
        ureq::Agent::new_with_defaults(),
    )
    .with_retry_policy(RetryPolicy::fast(2))
}

#[test]
fn password_grant_follows_opentexts_client() {
    let server = TestServer::start(|request, _| match request.path() {
        "/otmmapi/v6/sessions/oauth2/token" => {
            let expected = [
                ("grant_type", "password"),
                ("username", "svc-scaling"),
                ("password", "pa ss&word"),
                ("client_id", "scaling"),
                ("client_secret", "cs-value"),
            ];
            if expected
                .iter()
                .all(|(key, value)| request.form(key).as_deref() == Some(*value))
            {
                Reply::json(
                    200,
                    json!({"token_info": {"oauth_token": {"accessToken": "TOKEN7", "expiresIn": 1800, "tokenType": "Bearer"}}}),
                )
            } else {
                Reply::empty(400)
            }
        }
        "/otmmapi/v6/folders/F1" if request.header("authorization") == Some("Bearer TOKEN7") => {
            folder_reply("F1", "C-1")
        }
        _ => Reply::empty(401),
    });
    let auth = DamAuth::OAuth2 {
        auth_url: format!("{}/otmmapi/v6/sessions/oauth2/token", server.url),
        client_id: "scaling".into(),
        client_secret: Secret::new("cs-value".into()),
        grant: OAuthGrant::Password {
            username: "svc-scaling".into(),
            password: Secret::new("pa ss&word".into()),
        },
    };
    let dam = DamClient::new(&config(&server, auth), ureq::Agent::new_with_defaults())
        .with_retry_policy(RetryPolicy::fast(1));
    assert_eq!(dam.get_folder("F1").unwrap().id, "F1");
    assert_eq!(dam.get_folder("F1").unwrap().id, "F1");
    assert_eq!(
        server.count("POST", "/otmmapi/v6/sessions/oauth2/token"),
        1,
        "the token is reused within expiresIn"
    );
    // A bearer token is not a session: nothing to log out of.
    dam.logout();
    assert_eq!(server.count("DELETE", "/otmmapi/v6/sessions"), 0);
}

#[test]
fn a_session_is_logged_out_once_and_the_next_call_logs_in_again() {
    let server =
        TestServer::start(
            |request, earlier| match (request.method.as_str(), request.path()) {
                ("POST", "/otmmapi/v6/sessions") => login_reply(earlier),
                ("DELETE", "/otmmapi/v6/sessions") if authenticated(request) => Reply::empty(204),
                (_, "/otmmapi/v6/folders/F1") if authenticated(request) => {
                    folder_reply("F1", "C-1")
                }
                _ => session_expired(),
            },
        );
    let dam = client(&server);
    dam.logout();
    assert_eq!(
        server.count("DELETE", "/otmmapi/v6/sessions"),
        0,
        "no session yet"
    );
    dam.get_folder("F1").unwrap();
    dam.logout();
    dam.logout();
    assert_eq!(server.count("DELETE", "/otmmapi/v6/sessions"), 1);
    let delete = server
        .requests()
        .into_iter()
        .find(|request| request.method == "DELETE")
        .unwrap();
    assert_eq!(delete.header("x-requested-by"), Some("471542185"));
    dam.get_folder("F1").unwrap();
    assert_eq!(server.count("POST", "/otmmapi/v6/sessions"), 2);
}

#[test]
fn folder_reads_ask_for_metadata_and_listings_leave_deleted_assets_out() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/folders/F1" => folder_reply("F1", "C-1"),
        "/otmmapi/v6/folders/F1/children" => Reply::json(
            200,
            json!({"folder_children": {"asset_list": [
                {"asset_id": "A1", "name": "kept.mp4", "deleted": false},
                {"asset_id": "A2", "name": "gone.mp4", "deleted": true},
            ]}}),
        ),
        _ => not_found(),
    });
    let names = |dam: &DamClient| -> Vec<String> {
        dam.list_children("F1")
            .unwrap()
            .into_iter()
            .map(|asset| asset.name)
            .collect()
    };
    let last = |path: &str| -> Recorded {
        server
            .requests()
            .into_iter()
            .rev()
            .find(|request| request.path() == path)
            .unwrap()
    };
    let dam = client(&server);
    dam.get_folder("F1").unwrap();
    assert_eq!(names(&dam), ["kept.mp4"]);
    let get = last("/otmmapi/v6/folders/F1");
    assert_eq!(query_param(&get, "load_type").as_deref(), Some("custom"));
    let load: serde_json::Value =
        serde_json::from_str(&query_param(&get, "data_load_request").unwrap()).unwrap();
    assert_eq!(load["data_load_request"]["load_metadata"], json!(true));
    let children = last("/otmmapi/v6/folders/F1/children");
    let filter: serde_json::Value =
        serde_json::from_str(&query_param(&children, "asset_filter_request").unwrap()).unwrap();
    assert_eq!(filter, asset_filter_request());
    assert_eq!(
        query_param(&children, "load_type").as_deref(),
        Some("metadata")
    );

    let plain = client_with(
        &server,
        DamApi {
            folder_load: crate::config::FolderLoad::Metadata,
            exclude_deleted: false,
            ..DamApi::default()
        },
    );
    plain.get_folder("F1").unwrap();
    assert_eq!(
        names(&plain),
        ["kept.mp4"],
        "deleted assets are dropped either way"
    );
    let get = last("/otmmapi/v6/folders/F1");
    assert_eq!(query_param(&get, "load_type").as_deref(), Some("metadata"));
    assert!(query_param(&get, "data_load_request").is_none());
    let children = last("/otmmapi/v6/folders/F1/children");
    assert!(query_param(&children, "asset_filter_request").is_none());
}

#[test]
fn asset_hits_do_not_use_up_the_campaign_limit_and_pages_are_sorted() {
    // Page 1: an asset inheriting the status and a folder; page 2: the same folder again (a
    // shifted page) and a second folder.
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/search/text" => {
            let after: usize = query_param(request, "after").unwrap().parse().unwrap();
            let page = if after == 0 {
                json!([{"asset_id": "X1", "name": "master.mp4"}, folder("F1", "C-1")])
            } else {
                json!([folder("F1", "C-1"), folder("F2", "C-2")])
            };
            Reply::json(
                200,
                json!({"search_result_resource": {
                    "search_result": {"hit_count": 2, "total_hit_count": 4},
                    "asset_list": page}}),
            )
        }
        _ => not_found(),
    });
    let dam = client(&server);
    let found: Vec<String> = dam
        .search_folders_by_field("S", "ARTESIA.OPERATOR.CHAR.CONTAINS", "A1", 2)
        .unwrap()
        .into_iter()
        .map(|asset| asset.id)
        .collect();
    assert_eq!(found, ["F1", "F2"]);
    let first = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/otmmapi/v6/search/text")
        .unwrap();
    assert_eq!(
        query_param(&first, "sort").as_deref(),
        Some("asc_ARTESIA.FIELD.ASSET ID")
    );
}

#[test]
fn folder_locking_follows_the_setting() {
    let server = TestServer::start(|request, earlier| {
        match (request.method.as_str(), request.path()) {
            (_, "/otmmapi/v6/sessions") => login_reply(earlier),
            ("PUT", "/otmmapi/v6/assets/F1/state") => Reply::json(
                403,
                json!({"exception_body": {"http_response_code": 403, "message": "Containers cannot be locked"}}),
            ),
            ("PATCH", "/otmmapi/v6/folders/F1") => Reply::empty(200),
            _ => not_found(),
        }
    });
    client(&server).set_folder_field("F1", "F", "A2").unwrap();
    assert_eq!(server.count("PATCH", "/otmmapi/v6/folders/F1"), 1);
    assert_eq!(
        server.count("PUT", "/otmmapi/v6/assets/F1/state"),
        1,
        "no unlock without a lock"
    );

    let always = client_with(
        &server,
        DamApi {
            lock_folders: crate::config::FolderLocking::Always,
            ..DamApi::default()
        },
    );
    let error = always.set_folder_field("F1", "F", "A2").unwrap_err();
    assert!(error.stops_pass());
    let DamError::Dialect { fix, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(fix.contains("dam.api.lock_folders: when_allowed"), "{fix}");
    assert_eq!(
        server.count("PATCH", "/otmmapi/v6/folders/F1"),
        1,
        "no PATCH after a refused lock"
    );

    let never = client_with(
        &server,
        DamApi {
            lock_folders: crate::config::FolderLocking::Never,
            status_value_shape: ValueShape::DomainValue,
            ..DamApi::default()
        },
    );
    never.set_folder_field("F1", "F", "A3").unwrap();
    assert_eq!(server.count("PUT", "/otmmapi/v6/assets/F1/state"), 2);
    let patch = server
        .requests()
        .into_iter()
        .rev()
        .find(|request| request.method == "PATCH")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&patch.body).unwrap(),
        folder_field_patch("F", "A3", ValueShape::DomainValue)
    );
}

#[test]
fn redirects_to_another_host_carry_no_credentials() {
    let server = TestServer::start(|request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/assets/M1/contents" => {
            // Same port, another host name: another origin.
            let port = request
                .header("host")
                .and_then(|host| host.rsplit(':').next())
                .unwrap_or("0")
                .to_string();
            Reply::empty(302).header("location", &format!("http://localhost:{port}/cdn/M1"))
        }
        "/cdn/M1" => Reply::bytes(200, b"cdn-content!"),
        _ => not_found(),
    });
    let dam = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m1.bin");
    assert_eq!(dam.download_to("M1", &dest).unwrap(), 12);
    assert_eq!(std::fs::read(&dest).unwrap(), b"cdn-content!");
    let contents = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/otmmapi/v6/assets/M1/contents")
        .unwrap();
    assert!(contents.header("otmmauthtoken").is_some());
    let cdn = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/cdn/M1")
        .unwrap();
    assert!(cdn.header("otmmauthtoken").is_none());
    assert!(cdn.header("authorization").is_none());
    assert!(cdn.header("x-requested-by").is_none());
    assert!(
        cdn.header("cookie").is_none(),
        "the DAM's cookies stay with the DAM's host: {:?}",
        cdn.header("cookie")
    );
}

#[test]
fn import_completion_by_search_and_by_jobs() {
    let tracked = |id: &str, marker: &str, deleted: bool| {
        json!({"asset_id": id, "name": "Ab12CD_clip.mp4", "deleted": deleted,
            "metadata": {"metadata_element_list": [
                {"id": "T", "type": "com.artesia.metadata.MetadataField",
                 "value": {"value": {"type": "string", "value": marker}}}]}})
    };
    let list = json!([
        tracked("OTHER", "Ab12CD v01 box:1/2 old", false),
        tracked("GONE", "Ab12CD v01 box:1/2", true),
        tracked("NEW", "Ab12CD v01 box:1/2", false),
    ]);
    let server = TestServer::start(move |request, earlier| match request.path() {
        "/otmmapi/v6/sessions" => login_reply(earlier),
        "/otmmapi/v6/search/text" => Reply::json(
            200,
            json!({"search_result_resource": {
                "search_result": {"hit_count": 3, "total_hit_count": 3},
                "asset_list": list.clone()}}),
        ),
        _ => not_found(),
    });
    let probe = ImportProbe {
        job_id: Some("77"),
        folder_id: "FINAL",
        name: "Ab12CD_clip.mp4",
        field_id: "T",
        marker: "Ab12CD v01 box:1/2",
    };
    let dam = client(&server);
    assert_eq!(
        dam.wait_for_import(&probe, Some(Duration::ZERO))
            .unwrap()
            .as_deref(),
        Some("NEW"),
        "exact marker and name, deleted assets left out"
    );
    assert_eq!(server.count("GET", "/otmmapi/v6/jobs/77/assets"), 0);
    let search = server
        .requests()
        .into_iter()
        .find(|request| request.path() == "/otmmapi/v6/search/text")
        .unwrap();
    let condition: serde_json::Value =
        serde_json::from_str(&query_param(&search, "search_condition_list").unwrap()).unwrap();
    assert_eq!(
        condition,
        field_condition("T", "ARTESIA.OPERATOR.CHAR.CONTAINS", "Ab12CD v01 box:1/2")
    );

    // With `jobs` against a server without the job resource: a clear error naming the setting.
    let jobs = client_with(
        &server,
        DamApi {
            import_completion: ImportCompletion::Jobs,
            ..DamApi::default()
        },
    );
    let error = jobs
        .wait_for_import(&probe, Some(Duration::ZERO))
        .unwrap_err();
    assert!(error.stops_pass());
    let DamError::Dialect { fix, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fix, "set dam.api.import_completion: search");
}
