//! Finding the `noex` binary (crate `noex-cli`) from a test or benchmark of this workspace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `noex` binary: `NOEX_BIN` when set, or what `cargo build -p noex-cli --bin noex`
/// builds into the caller's own target directory with the caller's profile (and target
/// triple), derived from `profile_dir`, the `<target-dir>[/<triple>]/<profile-dir>` the
/// caller's executable lives in. Cargo rebuilds `noex` when noex-cli changed and is a
/// no-op otherwise. Every failure is an error naming what to do.
pub fn noex_binary(profile_dir: &Path) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("NOEX_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "NOEX_BIN={} is not a file (unset it to build noex-cli)",
                bin.display()
            ))
        };
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new(&cargo);
    command
        .current_dir(&workspace)
        .args(["build", "-p", "noex-cli", "--bin", "noex"])
        .arg("--message-format=json-render-diagnostics");
    if let Some((target_dir, profile, triple)) = layout(profile_dir) {
        command.arg("--target-dir").arg(target_dir);
        command.args(["--profile", &profile]);
        if let Some(triple) = triple {
            command.args(["--target", &triple]);
        }
    }
    let shown = format!("{command:?}");
    let output = command.stdin(Stdio::null()).output().map_err(|e| {
        format!(
            "cannot run cargo ({}) to build the noex binary: {e}; build it yourself \
             (cargo build -p noex-cli) and set NOEX_BIN=/path/to/noex",
            Path::new(&cargo).display()
        )
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "building the noex binary failed ({}):\n{shown}\n{stderr}",
            output.status
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == "noex"
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .filter(|bin| bin.is_file())
        .ok_or_else(|| format!("cargo built no `noex` executable:\n{shown}\n{stderr}"))
}

/// `(target dir, profile, target triple)` from `<target-dir>[/<triple>]/<profile-dir>`;
/// the target directory is the one with cargo's `CACHEDIR.TAG`. `None` when the path does
/// not look like that (cargo's defaults apply then).
fn layout(profile_dir: &Path) -> Option<(PathBuf, String, Option<String>)> {
    let profile = match profile_dir.file_name()?.to_str()? {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let above = profile_dir.parent()?;
    if above.join("CACHEDIR.TAG").is_file() {
        return Some((above.to_path_buf(), profile, None));
    }
    let root = above.parent()?;
    root.join("CACHEDIR.TAG").is_file().then(|| {
        let triple = above.file_name()?.to_str()?.to_string();
        Some((root.to_path_buf(), profile, Some(triple)))
    })?
}
