//! Secrets stay secret (issues 6 and 10): all five binaries (the passes and the operator
//! commands `reprocess`, `cleanup`, `box-setup`) run with the most verbose logging (`-vv`, and
//! `RUST_LOG=trace`) through successful runs and failing ones (bad Box credentials, bad DAM
//! password, Box 401, a 500 from every API), and no secret value appears in their stdout or
//! stderr (also not hex-dumped by a transport's trace log), in any table of the tracking
//! database, in the error notes uploaded to Box, or in the emails and webhooks the sandbox
//! received.
//!
//! Secrets checked: the Box client secret, key passphrase and every line of the private key PEM
//! body; the Box access tokens issued (read from the token cache file after each pass); the DAM
//! password (and the wrong one tried); the database password (a role with a password owns the
//! test database); the Mailgun API key and its `Basic base64(api:key)` form; the DAM session
//! tokens (`otmmauthtoken` digest, `JSESSIONID`) and OAuth2 tokens the sandbox issued; the webhook
//! bearer token and signing secret; the corrupted client secret tried.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{admin_url, campaign_status, ffmpeg_video, require_ffmpeg, TestDb, World};

/// A PostgreSQL role with a password that owns the test database; dropped at the end.
struct SecretRole {
    name: String,
    password: String,
}

impl SecretRole {
    fn create() -> SecretRole {
        let name = format!("cs_secret_{}", random_text(10).to_lowercase());
        let password = format!("Db{}", random_text(24));
        let mut admin =
            postgres::Client::connect(&admin_url(), postgres::NoTls).expect("admin connection");
        admin
            .batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
            .expect("create role");
        SecretRole { name, password }
    }

    /// Makes the role own `db`; returns a URL that logs in as the role with its password.
    fn own(&self, db: &TestDb) -> String {
        let mut admin =
            postgres::Client::connect(&admin_url(), postgres::NoTls).expect("admin connection");
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} OWNER TO {}",
                db.name, self.name
            ))
            .expect("database owner");
        with_credentials(&db.url, &self.name, &self.password)
    }
}

impl Drop for SecretRole {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// `url` with `user:password@` as its user info.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}{path}")
}

fn random_text(length: usize) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..length)
        .map(|index| {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_usize(index);
            let value = usize::try_from(hasher.finish() % ALPHABET.len() as u64).unwrap_or(0);
            char::from(ALPHABET[value])
        })
        .collect()
}

/// The bytes of transport hex dumps found in `text` (`ureq_proto` traces raw wire data as lines
/// `... TRACE 7572 6571 2f33 ...  ureq/3.5.1..host`: 16 bytes per line in groups of 4 hex digits,
/// `--` padding), concatenated: a secret sent over the wire would show up here although it never
/// appears as plain text (it is split across lines).
fn hex_dumped_bytes(text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        if !tokens.any(|token| token == "TRACE") {
            continue;
        }
        for token in tokens {
            let is_group = token.len() == 4
                && token
                    .bytes()
                    .all(|byte| byte.is_ascii_hexdigit() || byte == b'-');
            if !is_group {
                break;
            }
            let digits = token.replace('-', "");
            for index in (0..digits.len().saturating_sub(1)).step_by(2) {
                if let Ok(byte) = u8::from_str_radix(&digits[index..index + 2], 16) {
                    bytes.push(byte);
                }
            }
        }
    }
    bytes
}

#[test]
fn hex_dumps_are_decoded() {
    let text = "2026-11-21T00:13:21Z TRACE 4265 6172 6572 2073  Bearer s\n\
                2026-11-21T00:13:21Z TRACE 6563 7265 74-- ----  ecret\n\
                2026-11-21T00:13:21Z DEBUG face beef";
    assert_eq!(hex_dumped_bytes(text), b"Bearer secret");
}

struct Secrets {
    /// label -> value
    values: Vec<(String, String)>,
}

impl Secrets {
    fn add(&mut self, label: &str, value: &str) {
        let value = value.trim();
        assert!(
            value.len() >= 8,
            "secret {label} is too short to search for meaningfully"
        );
        if !self.values.iter().any(|(_, known)| known == value) {
            self.values.push((label.to_string(), value.to_string()));
        }
    }

    /// Panics naming the secret and the place when `text` contains one.
    fn assert_absent(&self, place: &str, text: &str) {
        let dumped = String::from_utf8_lossy(&hex_dumped_bytes(text)).into_owned();
        for (label, value) in &self.values {
            assert!(
                !text.contains(value.as_str()),
                "secret {label} appears in {place}"
            );
            assert!(
                !dumped.contains(value.as_str()),
                "secret {label} appears hex-dumped in {place}"
            );
        }
    }
}

fn token_in_cache(world: &World) -> Option<String> {
    let text = std::fs::read_to_string(world.temp.path().join("box-token.json")).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value["access_token"].as_str().map(str::to_string)
}

/// The OTMM session digests (`otmmauthtoken`), `JSESSIONID` cookies and OAuth2 tokens the
/// sandbox holds now.
fn dam_tokens_in(world: &World) -> Vec<String> {
    let state = crate::util::get_json(&format!("{}/dam-credentials", world.sandbox.control()));
    let mut found = Vec::new();
    for session in state["sessions"].as_array().cloned().unwrap_or_default() {
        for key in ["digest", "jsessionid"] {
            if let Some(value) = session[key].as_str() {
                found.push(value.to_string());
            }
        }
    }
    for token in state["tokens"].as_array().cloned().unwrap_or_default() {
        if let Some(value) = token.as_str() {
            found.push(value.to_string());
        }
    }
    found
}

/// How the most verbose logging is asked for.
#[derive(Debug, Clone, Copy)]
enum Verbosity {
    /// `RUST_LOG=trace`, no `-v`.
    RustLogTrace,
    /// `-vv`, no `RUST_LOG`.
    DoubleV,
}

/// Runs `binary args` with the `base` environment at `verbosity`.
fn run_verbose(
    world: &World,
    base: &[(&str, &str)],
    binary: &str,
    args: &[&str],
    verbosity: Verbosity,
) -> Output {
    match verbosity {
        Verbosity::RustLogTrace => world.run_with_env(binary, args, base),
        Verbosity::DoubleV => {
            let mut with_flag = args.to_vec();
            with_flag.push("-vv");
            let env: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(name, _)| *name != "RUST_LOG")
                .collect();
            world.run_without(binary, &with_flag, &env, &["RUST_LOG"])
        }
    }
}

fn write_scenario(dir: &Path, master: &Path) -> std::path::PathBuf {
    let scenario = dir.join("secrets.yaml");
    std::fs::write(
        &scenario,
        format!(
            r"box:
  campaigns_folder: Campaigns
  watched_folders: [incoming]
dam:
  import_delay_ms: 100
  campaigns:
    - number: C-2026-0300
      name: Secret Keeping
      status: A1
      masters:
        - name: Secret_Master.mov
          file: {}
          mime_type: video/quicktime
          fields:
            ARTESIA.FIELD.ASSET NAME: Secret_Master.mov
            FERRERO.FIELD.MKTG.ASSET TYPE: {{value: video, display: Video}}
            MAIN_LANGUAGES: {{value: EN, display: English}}
",
            master.display()
        ),
    )
    .expect("scenario");
    scenario
}

#[test]
fn no_secret_reaches_logs_database_notes_or_notifications() {
    require_ffmpeg();
    let media = tempfile::tempdir().expect("media");
    let master = media.path().join("master.mov");
    let derivative = media.path().join("derivative.mov");
    ffmpeg_video(&master, "testsrc=size=320x240:rate=25", 10);
    ffmpeg_video(&derivative, "testsrc2=size=320x240:rate=25", 10);
    let scenario = write_scenario(media.path(), &master);

    // Declared before the world: dropped after it (the database must be gone first).
    let role = SecretRole::create();
    let world = World::with_sandbox(Some(&scenario), &[]);
    let database_url = role.own(&world.db);

    let mut secrets = Secrets { values: Vec::new() };
    let app_config_path = world.sandbox.str("box_app_config");
    let app: Value =
        serde_json::from_str(&std::fs::read_to_string(&app_config_path).expect("app config"))
            .expect("app config JSON");
    let settings = &app["boxAppSettings"];
    secrets.add(
        "Box client secret",
        settings["clientSecret"].as_str().expect("clientSecret"),
    );
    secrets.add(
        "Box key passphrase",
        settings["appAuth"]["passphrase"]
            .as_str()
            .expect("passphrase"),
    );
    let pem = settings["appAuth"]["privateKey"]
        .as_str()
        .expect("privateKey")
        .replace("\\n", "\n");
    let mut pem_lines = 0;
    for line in pem.lines() {
        let line = line.trim();
        if !line.is_empty() && !line.starts_with("-----") && line.len() >= 16 {
            secrets.add("Box private key PEM line", line);
            pem_lines += 1;
        }
    }
    assert!(
        pem_lines >= 10,
        "private key body found ({pem_lines} lines)"
    );
    secrets.add("DAM password", &world.sandbox.str("dam_password"));
    let mailgun_key = world.sandbox.str("mailgun_api_key");
    secrets.add("Mailgun API key", &mailgun_key);
    secrets.add(
        "Mailgun Basic credential",
        &base64::engine::general_purpose::STANDARD.encode(format!("api:{mailgun_key}")),
    );
    secrets.add("database password", &role.password);
    let webhook_token = format!("whk-{}", random_text(24));
    let signing_secret = format!("sig-{}", random_text(24));
    secrets.add("webhook bearer token", &webhook_token);
    secrets.add("webhook signing secret", &signing_secret);
    let wrong_dam_password = format!("wrong-{}", random_text(16));
    secrets.add("wrong DAM password", &wrong_dam_password);
    let wrong_client_secret = format!("bad-{}", random_text(28));
    secrets.add("corrupted Box client secret", &wrong_client_secret);
    let mut corrupted = app.clone();
    corrupted["boxAppSettings"]["clientSecret"] = json!(wrong_client_secret);
    let corrupted_path = world.temp.path().join("corrupted_box_config.json");
    std::fs::write(&corrupted_path, corrupted.to_string()).expect("corrupted config");
    let corrupted_path = corrupted_path.display().to_string();

    let base: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", database_url.as_str()),
        ("RUST_LOG", "trace"),
        ("WEBHOOK_TOKEN", webhook_token.as_str()),
        ("WEBHOOK_SIGNING_SECRET", signing_secret.as_str()),
    ];
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut tokens: BTreeSet<String> = BTreeSet::new();
    let mut dam_tokens: BTreeSet<String> = BTreeSet::new();
    let run = |binary: &str, extra: &[(&str, &str)]| -> Output {
        let mut env = base.clone();
        env.extend_from_slice(extra);
        world.run_with_env(binary, &["-vv"], &env)
    };
    let campaign_id = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign")
        .to_string();

    // 1. A successful a1-to-a2 pass while Mailgun and the webhook receiver answer 500.
    world.sandbox.fault("POST", "/v3/", 500, None);
    world
        .sandbox
        .fault("POST", "/_sandbox/webhooks/", 500, None);
    let output = run("a1-to-a2", &[]);
    assert_eq!(output.status.code(), Some(0), "a1-to-a2 succeeds");
    assert_eq!(campaign_status(&world.sandbox.state(), &campaign_id), "A2");
    outputs.push(("a1-to-a2 (notifications failing)".into(), output));
    tokens.extend(token_in_cache(&world));
    world.sandbox.clear_faults();

    // 2. A successful box-poll pass: one good derivative, one bad name (error note + email); the
    //    queued A2 notifications go out.
    let state = world.sandbox.state();
    let master_in_box = state["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find_map(|file| {
            file["name"]
                .as_str()
                .filter(|name| name.ends_with("_Secret_Master.mov"))
                .map(str::to_string)
        })
        .expect("master in Box");
    let tracking_id = master_in_box[..6].to_lowercase();
    let watched = world.sandbox.watched_folder_id();
    world.sandbox.agency_upload(
        &watched,
        &format!("{tracking_id}_Secret-Keeping_video_IT_9x16-15s_v01.mov"),
        &derivative,
    );
    world
        .sandbox
        .agency_upload(&watched, "Secret_video_ITA_v1.mov", &derivative);
    let output = run("box-poll", &[]);
    assert_eq!(output.status.code(), Some(0), "box-poll succeeds");
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id),
        "A3",
        "the derivative was imported"
    );
    outputs.push(("box-poll (success)".into(), output));
    tokens.extend(token_in_cache(&world));
    dam_tokens.extend(dam_tokens_in(&world));

    // 2b. The operator commands, each at RUST_LOG=trace and at -vv, each fetching its own Box
    //     token: a passing run, then Box 401, then Box and DAM 500.
    let rejected_id = world.sandbox.state()["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["name"] == "Secret_video_ITA_v1.mov")
        .and_then(|file| file["id"].as_str().map(str::to_string))
        .expect("the badly named file in Box");
    let operator_commands: Vec<(&str, Vec<&str>)> = vec![
        ("reprocess", vec!["status"]),
        ("reprocess", vec!["file", rejected_id.as_str()]),
        ("cleanup", vec!["--dry-run"]),
        ("box-setup", vec!["list-folder", watched.as_str()]),
        ("box-setup", vec!["doctor"]),
    ];
    let faults: Vec<(&str, Vec<(&str, &str, u16)>)> = vec![
        ("passing", vec![]),
        ("Box 401", vec![("GET", "/2.0/", 401)]),
        (
            "Box and DAM 500",
            vec![
                ("GET", "/2.0/", 500),
                ("POST", "/otmmapi/", 500),
                ("GET", "/otmmapi/", 500),
            ],
        ),
    ];
    for (situation, rules) in &faults {
        for (method, path, status) in rules {
            world.sandbox.fault(method, path, *status, None);
        }
        for (binary, args) in &operator_commands {
            for verbosity in [Verbosity::RustLogTrace, Verbosity::DoubleV] {
                let _ = std::fs::remove_file(world.temp.path().join("box-token.json"));
                let output = run_verbose(&world, &base, binary, args, verbosity);
                tokens.extend(token_in_cache(&world));
                outputs.push((
                    format!("{binary} {} ({situation}, {verbosity:?})", args.join(" ")),
                    output,
                ));
            }
        }
        dam_tokens.extend(dam_tokens_in(&world));
        world.sandbox.clear_faults();
    }

    // 3. A 500 from each API, each binary.
    world.sandbox.fault("GET", "/2.0/", 500, None);
    let output = run("box-poll", &[]);
    assert_ne!(output.status.code(), Some(0), "Box 500: the pass fails");
    outputs.push(("box-poll (Box API 500)".into(), output));
    world.sandbox.clear_faults();

    let _ = std::fs::remove_file(world.temp.path().join("box-token.json"));
    world.sandbox.fault("POST", "/oauth2/token", 500, None);
    let output = run("box-poll", &[]);
    assert_ne!(output.status.code(), Some(0), "token 500: the pass fails");
    outputs.push(("box-poll (token endpoint 500)".into(), output));
    world.sandbox.clear_faults();

    world.sandbox.fault("POST", "/api/2.0/", 500, None);
    world.sandbox.fault("POST", "/otmmapi/", 500, None);
    let output = run("a1-to-a2", &[]);
    assert_ne!(output.status.code(), Some(0), "DAM 500: the pass fails");
    outputs.push(("a1-to-a2 (DAM and Box upload 500)".into(), output));
    world.sandbox.clear_faults();

    // 4. Bad credentials.
    let _ = std::fs::remove_file(world.temp.path().join("box-token.json"));
    let output = run("box-poll", &[("BOX_CONFIG_FILE", corrupted_path.as_str())]);
    assert_ne!(output.status.code(), Some(0), "bad Box credentials fail");
    outputs.push(("box-poll (bad Box client secret)".into(), output));
    let output = run("a1-to-a2", &[("BOX_CONFIG_FILE", corrupted_path.as_str())]);
    outputs.push(("a1-to-a2 (bad Box client secret)".into(), output));
    let output = run("a1-to-a2", &[("DAM_PASSWORD", wrong_dam_password.as_str())]);
    assert_ne!(output.status.code(), Some(0), "bad DAM password fails");
    outputs.push(("a1-to-a2 (bad DAM password)".into(), output));

    // 5. A last good pass of each (tokens issued again are secrets too), also at -vv alone.
    let output = run("box-poll", &[]);
    outputs.push(("box-poll (final)".into(), output));
    tokens.extend(token_in_cache(&world));
    for binary in ["a1-to-a2", "box-poll"] {
        let _ = std::fs::remove_file(world.temp.path().join("box-token.json"));
        let output = run_verbose(&world, &base, binary, &[], Verbosity::DoubleV);
        assert_eq!(output.status.code(), Some(0), "{binary} at -vv");
        tokens.extend(token_in_cache(&world));
        outputs.push((format!("{binary} (final, -vv alone)"), output));
    }
    dam_tokens.extend(dam_tokens_in(&world));
    assert!(!tokens.is_empty(), "access tokens were issued and cached");
    for token in &tokens {
        secrets.add("Box access token", token);
    }
    assert!(!dam_tokens.is_empty(), "DAM sessions were opened");
    for token in &dam_tokens {
        secrets.add("DAM session token", token);
    }

    // --- Where secrets must not be.
    // Verbose logging is on: every binary, at each way of asking for it, logged DEBUG or TRACE
    // lines in some run (`reprocess status` alone has nothing to say at debug).
    let mut verbose: BTreeSet<String> = BTreeSet::new();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    for (label, output) in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let binary = label
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let key = format!(
            "{binary} {}",
            if label.contains("DoubleV") || label.contains("-vv alone") {
                "-vv"
            } else {
                "RUST_LOG=trace"
            }
        );
        ran.insert(key.clone());
        if stderr.contains("DEBUG") || stderr.contains("TRACE") {
            verbose.insert(key);
        }
        secrets.assert_absent(&format!("stderr of {label}"), &stderr);
        secrets.assert_absent(&format!("stdout of {label}"), &stdout);
    }
    assert_eq!(
        verbose, ran,
        "verbose logging is on for every binary and way"
    );
    assert_eq!(ran.len(), 10, "five binaries, two ways each: {ran:?}");

    let mut db = world.db.client();
    let tables: Vec<String> = db
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .expect("tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.iter().any(|table| table == "runs"), "{tables:?}");
    let mut runs_with_errors = 0;
    for table in &tables {
        let rows = db
            .query(
                &format!("SELECT row_to_json(t)::text FROM \"{table}\" t"),
                &[],
            )
            .expect("rows");
        for row in rows {
            let text: String = row.get(0);
            if table == "runs" && text.contains("\"error\":\"") {
                runs_with_errors += 1;
            }
            secrets.assert_absent(&format!("table {table}"), &text);
        }
    }
    eprintln!(
        "figures: {} tables checked, {runs_with_errors} runs rows with an error text",
        tables.len()
    );

    let state = world.sandbox.state();
    let notes: Vec<&Value> = state["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|file| {
            file["name"]
                .as_str()
                .is_some_and(|name| name.ends_with(".error.txt"))
        })
        .collect();
    assert!(!notes.is_empty(), "an error note was uploaded");
    for note in notes {
        let path = note["content_path"].as_str().expect("content path");
        let text = std::fs::read_to_string(path).expect("note");
        secrets.assert_absent(&format!("Box note {}", note["name"]), &text);
    }

    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert!(emails.len() >= 2, "emails were sent: {}", emails.len());
    secrets.assert_absent("emails", &Value::Array(emails).to_string());
    let webhooks = state["webhooks"].as_array().cloned().unwrap_or_default();
    assert!(!webhooks.is_empty(), "webhooks were sent");
    for webhook in &webhooks {
        // The bearer token is meant to be in the receiver's Authorization header: everything else
        // must not carry a secret.
        let mut shown = webhook.clone();
        if let Some(headers) = shown["headers"].as_object_mut() {
            headers.remove("authorization");
        }
        secrets.assert_absent("webhooks", &shown.to_string());
        assert_eq!(
            webhook["headers"]["authorization"],
            format!("Bearer {webhook_token}").as_str(),
            "the webhook token did its job"
        );
    }
    eprintln!(
        "figures: {} secrets checked across {} passes",
        secrets.values.len(),
        outputs.len()
    );
}

/// ffprobe (issue 10) runs with a cleared environment and only the `file` protocol: a wrapper
/// set as `FFPROBE_PATH` records the environment and arguments of every probe and runs the real
/// ffprobe. An ffconcat playlist delivered under a valid name ending `.mp4` is rejected as
/// invalid data (the `mov` demuxer is forced), and its Box error note names no path of this
/// server.
#[test]
fn ffprobe_gets_no_secret_and_a_playlist_named_mp4_is_rejected() {
    require_ffmpeg();
    let media = tempfile::tempdir().expect("media");
    let master = media.path().join("master.mov");
    let derivative = media.path().join("derivative.mov");
    ffmpeg_video(&master, "testsrc=size=320x240:rate=25", 5);
    ffmpeg_video(&derivative, "testsrc2=size=320x240:rate=25", 5);
    let scenario = write_scenario(media.path(), &master);
    let world = World::with_sandbox(Some(&scenario), &[]);

    let real = std::process::Command::new("sh")
        .args(["-c", "command -v ffprobe"])
        .output()
        .expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(real.starts_with('/'), "ffprobe is installed: {real:?}");
    let env_dump = media.path().join("ffprobe-env.txt");
    let args_dump = media.path().join("ffprobe-args.txt");
    let wrapper = media.path().join("ffprobe-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n/usr/bin/env >> '{env}'\necho '--' >> '{env}'\nprintf '%s\\n' \"$@\" >> '{args}'\necho '--' >> '{args}'\nexec '{real}' \"$@\"\n",
            env = env_dump.display(),
            args = args_dump.display()
        ),
    )
    .expect("wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod wrapper");
    }
    let wrapper = wrapper.display().to_string();
    let secret_env = [
        ("FFPROBE_PATH", wrapper.as_str()),
        ("WEBHOOK_TOKEN", "whk-ffprobe-must-not-see-this"),
        ("WEBHOOK_SIGNING_SECRET", "sig-ffprobe-must-not-see-this"),
    ];
    let output = world.run_with_env("a1-to-a2", &[], &secret_env);
    assert_eq!(output.status.code(), Some(0));
    let master_in_box = world.sandbox.state()["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find_map(|file| {
            file["name"]
                .as_str()
                .filter(|name| name.ends_with("_Secret_Master.mov"))
                .map(str::to_string)
        })
        .expect("master in Box");
    let tracking_id = master_in_box[..6].to_lowercase();
    let watched = world.sandbox.watched_folder_id();
    world.sandbox.agency_upload(
        &watched,
        &format!("{tracking_id}_Secret-Keeping_video_IT_9x16-15s_v01.mov"),
        &derivative,
    );
    let playlist = media.path().join("playlist.mp4");
    std::fs::write(
        &playlist,
        "ffconcat version 1.0\nfile 'box-token.json'\nfile '../box-token.json'\n",
    )
    .expect("playlist");
    let playlist_name = format!("{tracking_id}_Secret-Keeping_video_DE_9x16-15s_v01.mp4");
    world
        .sandbox
        .agency_upload(&watched, &playlist_name, &playlist);
    let output = world.run_with_env("box-poll", &[], &secret_env);
    assert_eq!(output.status.code(), Some(0));

    // Both files were probed, each with PATH and LANG only (sh adds PWD).
    let environments = std::fs::read_to_string(&env_dump).expect("the wrapper ran");
    let probes = environments.matches("--\n").count();
    assert!(probes >= 2, "two probes: {environments}");
    for line in environments.lines().filter(|line| *line != "--") {
        let name = line.split_once('=').map_or(line, |(name, _)| name);
        assert!(
            ["PATH", "LANG", "PWD"].contains(&name),
            "ffprobe got {name}: {environments}"
        );
    }
    for secret in [
        world.sandbox.str("dam_password"),
        world.sandbox.str("mailgun_api_key"),
        "ffprobe-must-not-see-this".to_string(),
    ] {
        assert!(!environments.contains(&secret), "a secret reached ffprobe");
    }
    let arguments = std::fs::read_to_string(&args_dump).expect("arguments");
    for probe in arguments
        .split("--\n")
        .filter(|probe| !probe.trim().is_empty())
    {
        let args: Vec<&str> = probe.lines().collect();
        assert!(
            args.windows(2)
                .any(|pair| pair == ["-protocol_whitelist", "file"]),
            "{args:?}"
        );
        assert!(args.windows(2).any(|pair| pair[0] == "-f"), "{args:?}");
        assert!(
            args.last()
                .is_some_and(|input| input.starts_with("file:/") && input.contains("/downloads/")),
            "downloads are probed in {{temp}}/downloads: {args:?}"
        );
    }

    // The playlist went to _errors with a note that says why and names no server path.
    let state = world.sandbox.state();
    let note = state["box"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| {
            file["name"].as_str().is_some_and(|name| {
                name.starts_with(&playlist_name) && name.ends_with(".error.txt")
            })
        })
        .unwrap_or_else(|| panic!("an error note for {playlist_name}"));
    let text = std::fs::read_to_string(note["content_path"].as_str().expect("content path"))
        .expect("note");
    assert!(text.contains("Invalid data"), "{text}");
    let temp = world.temp.path().display().to_string();
    assert!(
        !text.contains(&temp),
        "the temp path is in the note: {text}"
    );
    assert!(!text.contains("/downloads/"), "{text}");
    assert!(!text.contains("box-token"), "{text}");
    let emails = state["emails"].to_string();
    assert!(!emails.contains(&temp), "the temp path is in an email");
}
