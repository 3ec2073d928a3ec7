//! End-to-end runs of the `secret-broker` binary on the embedded default.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CANARY: &str = "canary-cli-4f9d2e71";

fn broker(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secret-broker"))
        .args(args)
        .env("SECRET_BROKER_DATA_DIR", data_dir)
        .env("SECRET_BROKER_LOG", "trace")
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env_remove("SECRET_BROKER_STORE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn put_list_get_delete_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let id = "/openmetadata/database/mysql_prod/password";
    let put = broker(
        dir.path(),
        &["secret", "put", id],
        Some(&format!("{CANARY}\n")),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert!(text(&put.stderr).contains("created"));

    let again = broker(dir.path(), &["secret", "put", id], Some(CANARY));
    assert!(
        text(&again.stderr).contains("unchanged"),
        "{}",
        text(&again.stderr)
    );

    let list = broker(dir.path(), &["secret", "list", "/openmetadata/"], None);
    assert_eq!(text(&list.stdout), format!("{id}\n"));

    let get = broker(dir.path(), &["secret", "get", id], None);
    assert!(get.status.success());
    assert_eq!(
        text(&get.stdout),
        format!("{CANARY}\n"),
        "get prints the value alone"
    );

    // The value appears nowhere but in the admin's own `get` output: not in any
    // log line at trace level, not at rest.
    for out in [&put, &again, &list, &get] {
        assert!(
            !text(&out.stderr).contains(CANARY),
            "canary in stderr: {}",
            text(&out.stderr)
        );
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                "canary in {}",
                path.display()
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let del = broker(dir.path(), &["secret", "delete", id], None);
    assert!(del.status.success());
    let missing = broker(dir.path(), &["secret", "get", id], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains(&format!("no secret at {id}")),
        "{}",
        text(&missing.stderr)
    );
    assert!(missing.stdout.is_empty());
}

#[test]
fn a_value_is_never_taken_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(dir.path(), &["secret", "put", "/a/b", CANARY], None);
    assert!(!out.status.success(), "an extra argument must be refused");
    assert!(
        !text(&out.stderr).contains(CANARY),
        "the refused argument is echoed: {}",
        text(&out.stderr)
    );
}

#[test]
fn bad_ids_are_refused_with_the_rule_they_break() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(dir.path(), &["secret", "put", "/has space/x"], Some("v"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("outside the allowed characters"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn verify_rejects_what_is_not_a_provider() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "text.wasm",
            b"definitely not wasm",
            "is not a WebAssembly file",
        ),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "is a core WebAssembly module, not a component",
        ),
        (
            "empty.wasm",
            b"\0asm\x0d\0\x01\0",
            "does not export `secret-broker:provider/provider@0.1.0`",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = broker(
            dir.path(),
            &["provider", "verify", path.to_str().unwrap()],
            None,
        );
        assert!(!out.status.success(), "{name} verified");
        assert!(
            text(&out.stderr).contains(want),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}
