//! Deployment as an operator does it (issue 14): `crontab.example`'s lines run as written under
//! cron's minimal environment (`env -i`), and the command-line conventions every binary shares:
//! `--version` with the commit, `--generate` (man page, completions), `-q`, `NO_COLOR`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{bin, campaign_status, copy_config_dir, repo_root, World};

const DEMO: &str = "crates/sandbox/scenarios/demo.yaml";
const BINARIES: [&str; 5] = ["a1-to-a2", "box-poll", "reprocess", "cleanup", "box-setup"];

/// `crontab.example` read as cron reads it: `NAME=value` lines and job lines (five time fields,
/// then the command), comments and blank lines skipped.
struct Crontab {
    variables: Vec<(String, String)>,
    jobs: Vec<String>,
    /// The commented set-up commands of the header (`#   /opt/.../bin/box-setup ...`).
    setup: Vec<String>,
}

fn read_crontab() -> Crontab {
    let text = std::fs::read_to_string(repo_root().join("crontab.example")).expect("crontab");
    let mut crontab = Crontab {
        variables: Vec::new(),
        jobs: Vec::new(),
        setup: Vec::new(),
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let command = comment.trim();
            if command.starts_with("/opt/content-scaling/bin/box-setup install-dirs") {
                crontab.setup.push(command.to_string());
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with(|c: char| c.is_ascii_digit() || c == '*' || c == '@') {
            let mut rest = trimmed;
            for _ in 0..5 {
                rest = rest.trim_start();
                let end = rest.find(char::is_whitespace).expect("five time fields");
                rest = &rest[end..];
            }
            crontab.jobs.push(rest.trim().to_string());
        } else {
            let (name, value) = trimmed.split_once('=').expect("NAME=value");
            crontab
                .variables
                .push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    crontab
}

/// The deployment-specific values an operator adjusts; nothing else of a line changes. The web
/// root of the status page is the log directory's sibling `www`.
fn localise(text: &str, root: &Path, log_dir: &Path, user: &str) -> String {
    let web_root = log_dir.with_file_name("www");
    text.replace("/opt/content-scaling", &root.display().to_string())
        .replace("/var/log/content-scaling", &log_dir.display().to_string())
        .replace("/var/www/content-scaling", &web_root.display().to_string())
        .replace("--owner content-scaling", &format!("--owner {user}"))
}

/// Runs `command` as cron does: a fresh environment with only HOME, LOGNAME, SHELL=/bin/sh and
/// PATH=/usr/bin:/bin, then the crontab's variables, then `$SHELL -c command`.
fn run_as_cron(variables: &[(String, String)], command: &str) -> Output {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let user = current_user();
    let mut environment = vec![
        ("HOME".to_string(), home),
        ("LOGNAME".to_string(), user),
        ("SHELL".to_string(), "/bin/sh".to_string()),
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
    ];
    for (name, value) in variables {
        environment.retain(|(known, _)| known != name);
        environment.push((name.clone(), value.clone()));
    }
    let shell = environment
        .iter()
        .find(|(name, _)| name == "SHELL")
        .map(|(_, value)| value.clone())
        .expect("SHELL");
    let output = Command::new("env")
        .arg("-i")
        .args(
            environment
                .iter()
                .map(|(name, value)| format!("{name}={value}")),
        )
        .args([shell.as_str(), "-c", command])
        .output()
        .expect("env -i");
    eprintln!(
        "--- cron: {command}\nexit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A deployment directory as the README lays it out: `bin/` (the built binaries), `config/`
/// (the shipped configuration), `.env` (chmod 600) with this test's sandbox and database.
fn deployment(world: &World) -> PathBuf {
    let root = world.temp.path().join("opt/content-scaling");
    std::fs::create_dir_all(root.join("bin")).expect("bin dir");
    for binary in BINARIES {
        std::os::unix::fs::symlink(bin(binary), root.join("bin").join(binary)).expect("symlink");
    }
    copy_config_dir(&root);
    let mut env_file = String::new();
    for (name, value) in world.sandbox.env(&world.db, &world.temp.path().join("tmp")) {
        // cron's own variables come from the crontab; RUST_LOG is not set under cron.
        if !matches!(
            name.as_str(),
            "CS_CONFIG_DIR" | "CS_ENVIRONMENT" | "RUST_LOG"
        ) {
            env_file.push_str(&format!("{name}='{value}'\n"));
        }
    }
    std::fs::create_dir_all(world.temp.path().join("tmp")).expect("temp dir");
    std::fs::set_permissions(
        world.temp.path().join("tmp"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod temp");
    std::fs::write(root.join(".env"), env_file).expect(".env");
    std::fs::set_permissions(root.join(".env"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod .env");
    root
}

/// Every job line of `crontab.example` runs as written (only the deployment's paths, the
/// environment name and the service user adjusted) in cron's minimal environment: the log
/// directory made by the header's set-up command, ffprobe found through the crontab's PATH,
/// `.env` found from CS_CONFIG_DIR, each job exiting 0 and appending to its log file.
#[test]
fn crontab_lines_run_as_written_under_crons_environment() {
    let world = World::new(Some(DEMO));
    let root = deployment(&world);
    let log_dir = world.temp.path().join("var/log/content-scaling");
    let user = current_user();
    let crontab = read_crontab();
    let variables: Vec<(String, String)> = crontab
        .variables
        .iter()
        .map(|(name, value)| {
            let value = if name == "CS_ENVIRONMENT" {
                // The sandbox stands in for production's Box, DAM and database.
                "sandbox".to_string()
            } else {
                localise(value, &root, &log_dir, &user)
            };
            (name.clone(), value)
        })
        .collect();
    let path = variables
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .expect("the crontab sets PATH (cron's default is /usr/bin:/bin)");
    assert!(
        path.split(':').any(|dir| dir == "/usr/local/bin"),
        "PATH reaches a static ffprobe in /usr/local/bin: {path}"
    );
    assert!(
        variables.iter().any(|(name, _)| name == "SHELL"),
        "the crontab sets SHELL"
    );
    assert!(crontab.jobs.len() >= 4, "jobs: {:?}", crontab.jobs);
    for job in &crontab.jobs {
        // cron turns an unescaped % into a newline: a job line must not have one.
        assert!(
            !job.replace("\\%", "").contains('%'),
            "unescaped % in: {job}"
        );
    }

    // Without the log directory a job's `2>>` fails before the binary starts.
    let first = localise(&crontab.jobs[0], &root, &log_dir, &user);
    let output = run_as_cron(&variables, &first);
    assert_ne!(output.status.code(), Some(0), "no log directory yet");

    assert_eq!(crontab.setup.len(), 1, "the header's set-up command");
    let setup = localise(&crontab.setup[0], &root, &log_dir, &user);
    let output = run_as_cron(&variables, &setup);
    assert_eq!(output.status.code(), Some(0), "{setup}");
    let mode = std::fs::metadata(&log_dir)
        .expect("log dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750, "log dir mode {mode:o}");
    let output = run_as_cron(&variables, &setup);
    assert_eq!(
        output.status.code(),
        Some(0),
        "install-dirs again: idempotent"
    );

    // The web root the status page is written into exists on a web server.
    std::fs::create_dir_all(log_dir.with_file_name("www")).expect("web root");
    for job in &crontab.jobs {
        let command = localise(job, &root, &log_dir, &user);
        let output = run_as_cron(&variables, &command);
        assert_eq!(output.status.code(), Some(0), "{command}");
    }
    let state = world.sandbox.state();
    let campaign = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign")
        .to_string();
    assert_eq!(
        campaign_status(&state, &campaign),
        "A2",
        "a1-to-a2 ran from cron"
    );
    let log = std::fs::read_to_string(log_dir.join("a1-to-a2.log")).expect("a1-to-a2.log");
    let first_line: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a log line")).expect("JSON log lines");
    assert!(first_line["level"].is_string(), "{first_line}");
    for binary in ["box-poll", "cleanup"] {
        assert!(
            log_dir.join(format!("{binary}.log")).is_file(),
            "{binary}.log created"
        );
    }
    let page = std::fs::read_to_string(log_dir.with_file_name("www").join("index.html"))
        .expect("the status page job wrote its page");
    assert!(page.contains("C-2026-0142"), "the page shows the campaign");
}

/// `--version` names the commit it was built from; `--generate` writes a man page and shell
/// completions from the same definitions as `--help`, and refuses an unknown kind with exit 2.
#[test]
fn version_names_the_commit_and_generate_writes_man_pages_and_completions() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(repo_root())
        .output()
        .expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    for binary in BINARIES {
        let output = Command::new(bin(binary))
            .arg("--version")
            .output()
            .expect("--version");
        assert_eq!(output.status.code(), Some(0));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.starts_with(&format!("{binary} 0.")) && text.contains(", built 20"),
            "{text}"
        );
        assert!(
            head.is_empty() || text.contains(&format!("(commit {head} ")),
            "built from HEAD {head}: {text}"
        );
        let man = Command::new(bin(binary))
            .args(["--generate", "man"])
            .output()
            .expect("--generate man");
        assert_eq!(man.status.code(), Some(0));
        let man = String::from_utf8_lossy(&man.stdout);
        assert!(man.contains(&format!(".TH {binary} 1")), "{man}");
        let bash = Command::new(bin(binary))
            .args(["--generate", "bash"])
            .output()
            .expect("--generate bash");
        assert!(
            String::from_utf8_lossy(&bash.stdout)
                .contains(&format!("complete -F _{}", binary.replace('-', "__"))),
            "{}",
            String::from_utf8_lossy(&bash.stdout)
        );
    }
    let output = Command::new(bin("reprocess"))
        .args(["--generate", "troff"])
        .output()
        .expect("--generate troff");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("man, bash, zsh, fish"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `-q` leaves only warnings and errors on stderr; `NO_COLOR` keeps colour off a terminal
/// (the pass runs under `script`, which gives it a pseudo-terminal).
#[test]
fn quiet_and_no_color() {
    let world = World::new(Some(DEMO));
    let output = world.run_without("a1-to-a2", &["-q"], &[], &["RUST_LOG"]);
    assert_eq!(output.status.code(), Some(0));
    let state = world.sandbox.state();
    let campaign = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign")
        .to_string();
    assert_eq!(campaign_status(&state, &campaign), "A2", "the pass ran");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("INFO"), "-q: no info lines: {err}");

    let on_terminal = |no_color: bool| {
        let mut pass = Command::new("script");
        pass.args([
            "-qec",
            &format!("{} -v", bin("box-poll").display()),
            "/dev/null",
        ])
        .envs(world.sandbox.env(&world.db, world.temp.path()))
        .env_remove("RUST_LOG");
        if no_color {
            pass.env("NO_COLOR", "1");
        } else {
            pass.env_remove("NO_COLOR");
        }
        let output = pass.output().expect("script");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(
        coloured.contains("\u{1b}["),
        "colour on a terminal: {coloured}"
    );
    let plain = on_terminal(true);
    assert!(!plain.is_empty(), "the pass logged");
    assert!(!plain.contains("\u{1b}["), "NO_COLOR: {plain}");
}
