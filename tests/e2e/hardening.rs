//! Issue 10: the one exit policy for set-up problems (exit 2 with the cause and a `hint:` line)
//! and the `.env` rule (read only from the deployment root next to `config/`).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{bin, copy_config_dir, stderr, stdout, World};

/// Every binary that reads the Box app config, with arguments.
const BOX_COMMANDS: &[(&str, &[&str])] = &[
    ("a1-to-a2", &[]),
    ("box-poll", &[]),
    ("box-setup", &["list-folder", "0"]),
    ("cleanup", &["--dry-run"]),
];

#[test]
fn a_missing_box_app_config_exits_2_with_a_hint() {
    let world = World::new(None);
    for (binary, args) in BOX_COMMANDS {
        let output = world.run_with_env(
            binary,
            args,
            &[("BOX_CONFIG_FILE", "/nonexistent/box.json")],
        );
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{binary}: {text}");
        assert!(text.contains("/nonexistent/box.json"), "{binary}: {text}");
        assert!(
            text.contains("\nhint: ") || text.starts_with("hint: "),
            "{binary}: {text}"
        );
        assert!(text.contains("BOX_CONFIG_FILE"), "{binary}: {text}");
    }
}

#[test]
fn a_wrong_key_passphrase_exits_2() {
    let world = World::new(None);
    let app: Value = serde_json::from_str(
        &std::fs::read_to_string(world.sandbox.str("box_app_config")).expect("app config"),
    )
    .expect("app config JSON");
    let mut wrong = app.clone();
    wrong["boxAppSettings"]["appAuth"]["passphrase"] = Value::from("not-the-passphrase-123");
    let path = world.temp.path().join("wrong_passphrase.json");
    std::fs::write(&path, wrong.to_string()).expect("write");
    let path = path.display().to_string();
    for (binary, args) in BOX_COMMANDS {
        let output = world.run_with_env(binary, args, &[("BOX_CONFIG_FILE", path.as_str())]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{binary}: {text}");
        assert!(text.contains("wrong passphrase"), "{binary}: {text}");
        assert!(!text.contains("not-the-passphrase-123"), "{binary}: {text}");
        assert!(text.contains("hint: "), "{binary}: {text}");
    }
}

#[test]
fn a_temp_dir_others_may_write_exits_2() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new(None);
    let shared = world.temp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let shared_text = shared.display().to_string();
    for (binary, args) in BOX_COMMANDS
        .iter()
        .filter(|(binary, _)| *binary != "box-setup")
    {
        let output = world.run_with_env(binary, args, &[("CS_TEMP_DIR", shared_text.as_str())]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{binary}: {text}");
        assert!(
            text.contains("writable by group or others (mode 777)"),
            "{binary}: {text}"
        );
        assert!(
            text.contains(&format!("hint: chmod 700 {shared_text}")),
            "{binary}: {text}"
        );
        assert!(
            !shared.join("downloads").exists(),
            "{binary}: nothing is downloaded into a shared dir"
        );
    }
    // doctor says so too.
    let output = world.run_with_env(
        "box-setup",
        &["doctor"],
        &[("CS_TEMP_DIR", shared_text.as_str())],
    );
    let text = stdout(&output);
    assert!(text.contains("FAIL temp dir"), "{text}");
    assert!(
        text.contains(&format!("fix: chmod 700 {shared_text}")),
        "{text}"
    );

    // A temp dir that does not exist yet is created private (0700), downloads/ too.
    let fresh = world.temp.path().join("fresh/content-scaling");
    let fresh_text = fresh.display().to_string();
    let output = world.run_with_env("box-poll", &[], &[("CS_TEMP_DIR", fresh_text.as_str())]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for dir in [fresh.clone(), fresh.join("downloads")] {
        let mode = std::fs::metadata(&dir)
            .expect("created")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}

/// Runs `binary args` from `cwd` with the sandbox environment, `config_dir` as the config
/// directory.
fn run_in(world: &World, cwd: &Path, config_dir: &Path, binary: &str, args: &[&str]) -> Output {
    let output = Command::new(bin(binary))
        .args(args)
        .current_dir(cwd)
        .envs(world.sandbox.env(&world.db, world.temp.path()))
        .env("CS_CONFIG_DIR", config_dir)
        .env_remove("CS_TEST_DATABASE_URL")
        .env_remove("FFPROBE_PATH")
        .output()
        .expect("run binary");
    eprintln!(
        "--- {binary} {args:?} in {} exit {:?}\n{}\n{}",
        cwd.display(),
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

/// A `.env` planted in the working directory is not read; the same file next to `config/` is
/// (the control: proves the planted variable would have taken effect).
#[test]
fn a_dotenv_in_the_working_directory_is_ignored() {
    let world = World::new(None);
    let deployment = tempfile::tempdir().expect("deployment root");
    let config_dir = copy_config_dir(deployment.path());
    let elsewhere = tempfile::tempdir().expect("working directory");
    let planted = "FFPROBE_PATH=/nonexistent/planted-ffprobe\n";
    std::fs::write(elsewhere.path().join(".env"), planted).expect("planted .env");

    let output = run_in(
        &world,
        elsewhere.path(),
        &config_dir,
        "box-setup",
        &["doctor"],
    );
    let text = stdout(&output);
    assert!(text.contains("ffprobe"), "doctor checks ffprobe: {text}");
    assert!(
        !text.contains("planted-ffprobe"),
        "the planted .env was read: {text}"
    );
    assert!(
        !text.contains(&elsewhere.path().display().to_string()),
        "doctor lists no .env of the working directory: {text}"
    );

    // Control: the same file in the deployment root is read.
    let beside = deployment.path().join(".env");
    std::fs::write(&beside, planted).expect(".env beside config/");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&beside, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let output = run_in(
        &world,
        elsewhere.path(),
        &config_dir,
        "box-setup",
        &["doctor"],
    );
    let text = stdout(&output);
    assert!(
        text.contains("/nonexistent/planted-ffprobe cannot be run"),
        "the deployment root's .env is read: {text}"
    );
    assert!(
        text.contains(&format!("ok   .env: {} is private", beside.display())),
        "{text}"
    );
}
