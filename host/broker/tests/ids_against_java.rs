//! The broker's secret ids against OpenMetadata's own computation, run on the
//! JDK (`tests/java/OmSecretIds.java`, a transcription of the Java server's
//! `buildSecretId` and its Kubernetes name mapping): for every backend style,
//! every class of input OpenMetadata accepts (non-Latin and emoji names, names
//! of only punctuation, names starting or ending with `-` or `_`, prefixes and
//! cluster names holding characters the backend does not take, long names)
//! the broker writes the id OpenMetadata writes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use secret_broker::openmetadata::ids::{IdBuilder, IdStyle, legacy_k8s_name};
use std::io::Write;
use std::process::{Command, Stdio};

const NAMES: &[&str] = &[
    "mysql_prod",
    "My Service.prod",
    "日本語のサービス",
    "Ελληνικά",
    "données-clients",
    "🚀 rocket db",
    "İstanbul",
    "KELVIN \u{212a}",
    "!!!",
    "...",
    "()",
    "-db-",
    "_db_",
    "--",
    "__",
    "a--b__c",
];

const PREFIXES: &[&str] = &[
    "",
    "om",
    "om prod",
    "om_prod",
    "om-prod",
    "Om.Prod",
    "a/b",
    "ünï",
    "\u{212a}elvin",
];

const CLUSTERS: &[&str] = &[
    "openmetadata",
    "open metadata",
    "open_metadata",
    "open-metadata",
    "OpenMetadata",
    "open/metadata",
    "クラスタ",
    "İstanbul",
];

const FIELDS: &[&[&str]] = &[
    &["authType", "password"],
    &["config", "JWTToken"],
    &[
        "sourceConfig",
        "config",
        "dbtConfigSource",
        "dbtSecurityConfig",
        "awsSecretAccessKey",
    ],
];

struct Case {
    style: &'static str,
    prefix: &'static str,
    cluster: &'static str,
    entity_type: &'static str,
    name: String,
    fields: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let long = "a".repeat(300);
    let mut names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
    names.push(long);
    names.push(format!("{}-{}", "b".repeat(226), "c".repeat(40)));
    let mut out = Vec::new();
    for style in ["slash", "azure", "gcp", "kubernetes", "kubernetes-legacy"] {
        for prefix in PREFIXES {
            for cluster in CLUSTERS {
                for (i, name) in names.iter().enumerate() {
                    let fields = FIELDS[i % FIELDS.len()];
                    out.push(Case {
                        style,
                        prefix,
                        cluster,
                        entity_type: ["database", "bot", "pipeline"][i % 3],
                        name: name.clone(),
                        fields,
                    });
                }
                out.push(Case {
                    style,
                    prefix,
                    cluster,
                    entity_type: "serverconnection",
                    name: String::new(),
                    fields: &["securityConfig", "secretKey"],
                });
            }
        }
    }
    out
}

fn broker_id(case: &Case) -> String {
    let style = match case.style {
        "slash" | "kubernetes-legacy" => IdStyle::Slash,
        "azure" => IdStyle::Azure,
        "gcp" => IdStyle::Gcp,
        _ => IdStyle::Kubernetes,
    };
    let prefix = Some(case.prefix).filter(|p| !p.is_empty());
    let ids = IdBuilder::with_style(prefix, case.cluster, style).expect("an id builder");
    let fields: Vec<String> = case.fields.iter().map(|f| (*f).to_owned()).collect();
    let name = Some(case.name.as_str()).filter(|n| !n.is_empty());
    let id = ids.id(case.entity_type, name, &fields);
    if case.style == "kubernetes-legacy" {
        legacy_k8s_name(&id)
    } else {
        id
    }
}

fn java_ids(cases: &[Case]) -> Vec<String> {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/OmSecretIds.java");
    let mut child = Command::new("java")
        .arg(source)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`java` (tests/setup installs a JDK): OpenMetadata's ids are computed on the JDK");
    let mut input = String::new();
    for c in cases {
        input.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            c.style,
            c.prefix,
            c.cluster,
            c.entity_type,
            c.name,
            c.fields.join("/")
        ));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write cases");
    drop(stdin);
    let out = child.wait_with_output().expect("java ran");
    assert!(out.status.success(), "java failed: {:?}", out.status);
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_id_openmetadata_writes_the_broker_writes_the_same_way() {
    let cases = cases();
    let expected = java_ids(&cases);
    assert_eq!(expected.len(), cases.len(), "one id per case from Java");
    let mut differ = Vec::new();
    for (case, want) in cases.iter().zip(&expected) {
        assert!(!want.starts_with("error "), "Java refused a case: {want}");
        let got = broker_id(case);
        if &got != want {
            differ.push(format!(
                "{} prefix {:?} cluster {:?} {} {:?}: broker {got:?}, OpenMetadata {want:?}",
                case.style, case.prefix, case.cluster, case.entity_type, case.name
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} ids differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
    // The classes the cases were chosen for are really there.
    for (style, sep) in [("azure", "--"), ("gcp", "__")] {
        assert!(
            cases
                .iter()
                .zip(&expected)
                .any(|(c, id)| c.style == style && id.contains(sep)),
            "{style}: no id with an empty segment among the cases"
        );
    }
}
