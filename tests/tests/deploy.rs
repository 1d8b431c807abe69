//! The systemd units of `deploy/systemd`: with the example environment file, each unit's command
//! line is accepted by its binary's argument parser, and `systemd-analyze verify` passes the
//! unit (pointed at the binaries this build made: it checks that `ExecStart` is executable).
//! Neither needs root; systemd does not run on this machine, so the units are not started here —
//! the namespace tests run the same binaries with the same flags.

use std::path::Path;
use std::process::Command;

use sluice_sandbox::{bin, repo_root};

fn deploy(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("deploy/systemd").join(file)).expect("deploy/systemd file")
}

/// `KEY=VALUE` lines of an environment file, as systemd reads them (no quotes used here).
fn environment(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The unit's `ExecStart` as systemd expands it: `${X}` one word, `$X` split on white space.
fn command_line(unit: &str, env: &[(String, String)]) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let value = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut words = Vec::new();
    for w in line.split_whitespace() {
        if let Some(k) = w.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            words.push(value(k));
        } else if let Some(k) = w.strip_prefix('$') {
            words.extend(value(k).split_whitespace().map(str::to_owned));
        } else {
            words.push(w.to_owned());
        }
    }
    words
}

#[test]
fn the_units_command_lines_parse_and_the_units_verify() {
    let env = environment(&deploy("sluice.env"));
    assert!(env.iter().any(|(k, _)| k == "SLUICE_IFACE"), "{env:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let analyze = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !analyze {
        eprintln!(
            "\n!!! systemd-analyze is not installed: the units' syntax is NOT verified (only their command lines)\n"
        );
    }
    for (unit, binary) in
        [("sluice-control.service", "sluice-control"), ("sluice-gateway.service", "sluice-gateway")]
    {
        let text = deploy(unit);
        let words = command_line(&text, &env);
        assert_eq!(words[0], format!("/usr/local/bin/{binary}"), "{unit}");
        let out = Command::new(bin(binary)).args(&words[1..]).arg("--help").output().expect(binary);
        assert!(
            out.status.success(),
            "{unit}: {words:?} is refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if analyze {
            let local = text
                .replace(
                    "/usr/local/bin/",
                    &format!("{}/", bin(binary).parent().unwrap_or(Path::new(".")).display()),
                )
                .replace(
                    "EnvironmentFile=/etc/sluice/sluice.env",
                    &format!("EnvironmentFile={}", repo_root().join("deploy/systemd/sluice.env").display()),
                );
            let path = dir.path().join(unit);
            std::fs::write(&path, local).expect("write unit");
            let out =
                Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
            let err = String::from_utf8_lossy(&out.stderr);
            // Units it pulls in (network-online.target, the other Sluice unit) are not installed
            // here; anything said about this unit itself is a failure.
            let about_it: Vec<&str> = err.lines().filter(|l| l.contains(unit)).collect();
            assert!(out.status.success() && about_it.is_empty(), "{unit}:\n{err}");
        }
    }
}
