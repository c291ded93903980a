//! Stamps the version line every binary prints (`--version`) with the git commit it was built
//! from, that commit's date and the build date: `CS_GIT_COMMIT`, `CS_GIT_DATE`, `CS_BUILD_DATE`.
//! Outside a git checkout (a source tarball) the commit reads `unknown`. `SOURCE_DATE_EPOCH`
//! (reproducible builds) replaces the build date.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let commit_date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    let built = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|seconds| seconds.parse::<i64>().ok())
    {
        Some(seconds) => {
            jiff::Timestamp::from_second(seconds).unwrap_or_else(|_| jiff::Timestamp::now())
        }
        None => jiff::Timestamp::now(),
    };
    println!("cargo:rustc-env=CS_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CS_GIT_DATE={commit_date}");
    println!(
        "cargo:rustc-env=CS_BUILD_DATE={}",
        built.strftime("%Y-%m-%d")
    );
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
            let common = PathBuf::from(common);
            println!(
                "cargo:rerun-if-changed={}",
                common.join("packed-refs").display()
            );
            if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
                println!(
                    "cargo:rerun-if-changed={}",
                    common.join(reference).display()
                );
            }
        }
    }
}
