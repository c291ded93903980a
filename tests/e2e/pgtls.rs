//! PostgreSQL over TLS and the exit codes of database errors, against a private PostgreSQL
//! cluster this test starts with `ssl=on` and a certificate signed by a CA it generates
//! (`openssl` CLI). The server logs every connection (`log_connections`), so each case checks
//! from the server's side whether the binary's connection used TLS.
//!
//! Needs the PostgreSQL server binaries (`initdb`, `pg_ctl`: /usr/lib/postgresql/*/bin, or on
//! PATH; scripts/lib.sh installs them) and `openssl`: without them the test fails, it does not
//! skip. As root the cluster runs as the `postgres` user (initdb refuses root), as
//! scripts/lib.sh does.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use scaling_core::config::DatabaseConfig;
use scaling_core::secret::Secret;
use scaling_core::store::{SslMode, Store};

use crate::util::{bin, repo_root};

/// Name in the server certificate (and `localhost`); 127.0.0.1 is deliberately not in it.
const CERT_NAME: &str = "db.cs-test.invalid";
const APP_ROLE: &str = "cs_app";
const APP_PASSWORD: &str = "tls-test-pass-4711";
const APP_DB: &str = "cs_tls";

/// A private cluster: stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = pg_bin();
        require_tool("openssl");
        let user = cluster_user();
        let dir = tempfile::Builder::new()
            .prefix("cs-pgtls-")
            .tempdir()
            .expect("temp dir");
        let cluster = Cluster {
            dir,
            bin,
            user,
            port: free_port(),
        };
        cluster.make_certificates();
        if let Some(user) = &cluster.user {
            run_ok(
                Command::new("chown")
                    .args(["-R", user])
                    .arg(cluster.dir.path()),
            );
        }
        let data = cluster.data();
        cluster.as_pg_user(
            Command::new(cluster.bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]),
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {APP_ROLE} 127.0.0.1/32 scram-sha-256\n\
                 host all all 127.0.0.1/32 trust\n"
            ),
        )
        .expect("write pg_hba.conf");
        let dir = cluster.dir.path();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} \
             -c log_connections=on -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            cluster.port,
            dir.display(),
            dir.join("server.crt").display(),
            dir.join("server.key").display(),
        );
        let started = cluster.as_pg_user_output(
            Command::new(cluster.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.log_path())
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        assert!(
            started.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            cluster.log()
        );
        let mut admin = cluster.admin();
        for statement in [
            "SET password_encryption = 'scram-sha-256'".to_string(),
            format!("CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'"),
            format!("CREATE DATABASE {APP_DB} OWNER {APP_ROLE}"),
        ] {
            admin
                .batch_execute(&statement)
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The CA that signed the server certificate.
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing this server has.
    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap_or_else(|error| panic!("admin connection: {error}\n{}", self.log()))
    }

    fn admin_on(&self, dbname: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={dbname} sslmode=disable",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap_or_else(|error| panic!("admin connection to {dbname}: {error}"))
    }

    /// `postgres://cs_app:…@{host}:{port}/cs_tls?application_name={app}&{query}`.
    fn url(&self, host: &str, app: &str, query: &str) -> String {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("&{query}")
        };
        format!(
            "postgres://{APP_ROLE}:{APP_PASSWORD}@{host}:{}/{APP_DB}?application_name={app}{query}",
            self.port
        )
    }

    /// The server's "connection authorized" log line of the connection named `app`.
    fn authorized_line(&self, app: &str) -> String {
        let needle = format!("application_name={app}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|line| line.contains("connection authorized") && line.contains(&needle))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no 'connection authorized' line for {app} in the server log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts from the server's side whether the connection named `app` used TLS.
    fn assert_tls(&self, app: &str, tls: bool) {
        let line = self.authorized_line(app);
        assert_eq!(
            line.contains("SSL enabled"),
            tls,
            "connection {app}: expected TLS {tls}; server log says: {line}"
        );
    }

    fn make_certificates(&self) {
        let dir = self.dir.path();
        let openssl = |args: &[&str]| {
            run_ok(Command::new("openssl").args(args).current_dir(dir));
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=content-scaling test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={CERT_NAME}"),
        ]);
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName=DNS:{CERT_NAME},DNS:localhost\n\
                 basicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write server.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod server.key");
    }

    fn as_pg_user(&self, command: &mut Command) {
        let output = self.as_pg_user_output(command);
        assert!(
            output.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn as_pg_user_output(&self, command: &mut Command) -> Output {
        let mut command = match &self.user {
            None => std::mem::replace(command, Command::new("true")),
            Some(user) => {
                let mut wrapped = Command::new("runuser");
                wrapped
                    .args(["-u", user, "--"])
                    .arg(command.get_program())
                    .args(command.get_args());
                wrapped
            }
        };
        command
            .current_dir("/")
            .output()
            .expect("run PostgreSQL binary")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.as_pg_user_output(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]),
        );
    }
}

/// The newest directory with `initdb` and `pg_ctl`; panics (the test fails) when there is none.
fn pg_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|path| {
        path.parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .expect(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: \
             install them (Debian/Ubuntu: apt-get install postgresql; scripts/lib.sh does it in CI)",
        )
}

fn require_tool(name: &str) {
    let found = Command::new(name)
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "{name} is needed to generate the test certificates (Debian/Ubuntu: apt-get install {name})"
    );
}

/// As root: the `postgres` user (initdb refuses root); otherwise ourselves.
fn cluster_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    for user in ["postgres", "cs-postgres"] {
        if Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|output| output.status.success())
        {
            return Some(user.to_string());
        }
    }
    run_ok(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "cs-postgres",
    ]));
    Some("cs-postgres".to_string())
}

fn run_ok(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A loopback port nothing listens on (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Runs `binary args` with the sandbox overlay's variables (nothing but the database is
/// contacted before the database check) and `extra` added; returns exit code and stderr.
fn run(binary: &str, args: &[&str], database_url: &str, extra: &[(&str, &str)]) -> (i32, String) {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(bin(binary));
    command
        .args(args)
        .env("CS_CONFIG_DIR", repo_root().join("config"))
        .env("CS_ENVIRONMENT", "sandbox")
        .env("CS_TEMP_DIR", temp.path())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .env_remove("CS_TEST_DATABASE_URL")
        .env_remove("DB_SSLMODE")
        .env_remove("DB_SSLROOTCERT");
    for (name, value) in [
        ("BOX_API_BASE_URL", "http://127.0.0.1:1"),
        ("BOX_UPLOAD_BASE_URL", "http://127.0.0.1:1/api"),
        ("BOX_OAUTH2_URL", "http://127.0.0.1:1/oauth2/token"),
        ("BOX_CONFIG_FILE", "/nonexistent/box.json"),
        ("BOX_ROOT_FOLDER_ID", "1"),
        ("BOX_WATCHED_FOLDER_ID", "2"),
        ("DAM_BASE_URL", "http://127.0.0.1:1"),
        ("DAM_USERNAME", "x"),
        ("DAM_PASSWORD", "x"),
        ("MAILGUN_BASE_URL", "http://127.0.0.1:1"),
        ("MAILGUN_DOMAIN", "mg.example.com"),
        ("MAILGUN_API_KEY", "x"),
        ("WEBHOOK_BASE_URL", "http://127.0.0.1:1/hooks"),
    ] {
        command.env(name, value);
    }
    command.envs(extra.iter().copied());
    let output = command.output().expect("run binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    eprintln!("--- {binary} {args:?} exit {code}\n{stderr}");
    (code, stderr)
}

/// `reprocess status` (operator path: connect + migrate + read).
fn status(database_url: &str, extra: &[(&str, &str)]) -> (i32, String) {
    run("reprocess", &["status"], database_url, extra)
}

#[test]
fn pgtls_sslmodes_against_a_tls_server() {
    let cluster = Cluster::start();
    let ca = cluster.ca().display().to_string();

    // require + sslrootcert (in the URL): connects over TLS.
    let url = cluster.url(
        "127.0.0.1",
        "cs-require",
        &format!("sslmode=require&sslrootcert={ca}"),
    );
    let (code, stderr) = status(&url, &[]);
    assert_eq!(code, 0, "require + sslrootcert must connect: {stderr}");
    cluster.assert_tls("cs-require", true);

    // The same through the configuration: DB_SSLMODE / DB_SSLROOTCERT apply to a DATABASE_URL
    // that names neither.
    let url = cluster.url("127.0.0.1", "cs-require-env", "");
    let (code, stderr) = status(&url, &[("DB_SSLMODE", "require"), ("DB_SSLROOTCERT", &ca)]);
    assert_eq!(
        code, 0,
        "DB_SSLMODE=require + DB_SSLROOTCERT must connect: {stderr}"
    );
    cluster.assert_tls("cs-require-env", true);

    // require checks the chain: a CA that did not sign the server certificate is refused.
    let other = cluster.other_ca().display().to_string();
    let url = cluster.url(
        "127.0.0.1",
        "cs-wrong-ca",
        &format!("sslmode=require&sslrootcert={other}"),
    );
    let (code, stderr) = status(&url, &[]);
    assert_eq!(
        code, 2,
        "an untrusted server certificate is a configuration error: {stderr}"
    );
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(stderr.contains("hint: set sslrootcert"), "{stderr}");

    // verify-full to 127.0.0.1 with a certificate for another name: exit 2, clear message.
    let url = cluster.url(
        "127.0.0.1",
        "cs-verify-full-ip",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let (code, stderr) = status(&url, &[]);
    assert_eq!(
        code, 2,
        "verify-full with the wrong host name must fail with 2: {stderr}"
    );
    assert!(
        stderr.contains(r#"certificate not valid for name "127.0.0.1""#)
            && stderr.contains(CERT_NAME),
        "the message names the host and the certificate's names: {stderr}"
    );
    assert!(stderr.contains("sslmode=verify-full"), "{stderr}");
    // The same for a pass binary.
    let (code, stderr) = run("box-poll", &[], &url, &[]);
    assert_eq!(code, 2, "box-poll: {stderr}");
    assert!(
        stderr.contains("certificate not valid for name"),
        "{stderr}"
    );

    // verify-full by a name the certificate holds connects.
    let url = cluster.url(
        "localhost",
        "cs-verify-full",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let (code, stderr) = status(&url, &[]);
    assert_eq!(
        code, 0,
        "verify-full by the certificate's name must connect: {stderr}"
    );
    cluster.assert_tls("cs-verify-full", true);

    // prefer uses TLS when the server offers it (no certificate check, as libpq).
    let url = cluster.url("127.0.0.1", "cs-prefer", "sslmode=prefer");
    let (code, stderr) = status(&url, &[]);
    assert_eq!(code, 0, "prefer: {stderr}");
    cluster.assert_tls("cs-prefer", true);

    // disable: plain.
    let url = cluster.url("127.0.0.1", "cs-disable", "sslmode=disable");
    let (code, stderr) = status(&url, &[]);
    assert_eq!(code, 0, "disable: {stderr}");
    cluster.assert_tls("cs-disable", false);

    // An sslmode this build does not know is a configuration error.
    let url = cluster.url("127.0.0.1", "cs-bad-mode", "sslmode=verify_full");
    let (code, stderr) = status(&url, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(r#"unknown sslmode "verify_full""#),
        "{stderr}"
    );

    // pg_stat_ssl, from the server's side, while the library holds a `prefer` connection.
    let database = DatabaseConfig {
        url: Secret::new(cluster.url("127.0.0.1", "cs-prefer-lib", "")),
        sslmode: Some(SslMode::Prefer),
        sslrootcert: None,
    };
    let store = Store::connect_database(&database).expect("prefer connects");
    let row = cluster
        .admin()
        .query_one(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'cs-prefer-lib'",
            &[],
        )
        .expect("pg_stat_ssl row of the prefer connection");
    let ssl: bool = row.get(0);
    let version: Option<String> = row.get(1);
    assert!(
        ssl,
        "prefer must use TLS when the server offers it (pg_stat_ssl.ssl)"
    );
    assert!(version.unwrap_or_default().starts_with("TLS"));
    drop(store);

    // A real pass against the sandbox, its database over verify-full: connects, migrates,
    // records its run, exits 0.
    let world = crate::util::World::with_sandbox(None, &[]);
    let url = cluster.url(
        "localhost",
        "cs-box-poll",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let output = world.run_with_env("box-poll", &[], &[("DATABASE_URL", &url)]);
    assert_eq!(output.status.code(), Some(0), "box-poll over verify-full");
    cluster.assert_tls("cs-box-poll", true);
    let runs: i64 = cluster
        .admin_on(APP_DB)
        .query_one(
            "SELECT count(*) FROM runs WHERE binary_name = 'box-poll' AND outcome = 'completed'",
            &[],
        )
        .expect("runs")
        .get(0);
    assert_eq!(
        runs, 1,
        "the pass recorded its run in the TLS cluster's database"
    );
}

#[test]
fn pgtls_database_errors_exit_codes() {
    let cluster = Cluster::start();
    let port = cluster.port;

    // Wrong database name, unknown role, wrong password: 2 with the server's FATAL text, for a
    // pass binary (box-poll), the operator path (cleanup) and `reprocess status`.
    let cases = [
        (
            format!("postgres://postgres@127.0.0.1:{port}/no_such_db?sslmode=disable"),
            r#"FATAL: database "no_such_db" does not exist"#,
            "hint: check the database name",
        ),
        (
            format!("postgres://no_such_role@127.0.0.1:{port}/{APP_DB}?sslmode=disable"),
            r#"FATAL: role "no_such_role" does not exist"#,
            "hint: check the role name",
        ),
        (
            format!(
                "postgres://{APP_ROLE}:wrong-secret-0815@127.0.0.1:{port}/{APP_DB}?sslmode=prefer"
            ),
            r#"FATAL: password authentication failed for user "cs_app""#,
            "hint: check the password",
        ),
    ];
    for (url, fatal, hint) in &cases {
        for (binary, args) in [
            ("box-poll", &[][..]),
            ("cleanup", &["--dry-run"][..]),
            ("reprocess", &["status"][..]),
        ] {
            let (code, stderr) = run(binary, args, url, &[]);
            assert_eq!(code, 2, "{binary} with {fatal}: {stderr}");
            assert!(
                stderr.contains(fatal),
                "{binary}: the server's text is missing: {stderr}"
            );
            assert!(stderr.contains(hint), "{binary}: {stderr}");
            assert!(!stderr.contains("db error"), "{binary}: {stderr}");
            assert!(
                !stderr.contains("wrong-secret-0815"),
                "{binary} printed the password: {stderr}"
            );
        }
    }

    // The database port closed: unreachable for now, 75.
    let closed = free_port();
    let url = format!("postgres://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{closed}/{APP_DB}");
    for (binary, args) in [("box-poll", &[][..]), ("reprocess", &["status"][..])] {
        let (code, stderr) = run(binary, args, &url, &[]);
        assert_eq!(code, 75, "{binary} with the port closed: {stderr}");
        assert!(stderr.contains("database unreachable"), "{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
        assert!(
            !stderr.contains("database unreachable: database unreachable"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(APP_PASSWORD),
            "{binary} printed the password: {stderr}"
        );
    }
}
