//! Embeds OpenMetadata's JSON Schemas for the release the broker targets, so
//! `serve` and `connection` need no `--schemas`. They are read at build time
//! from `SECRET_BROKER_EMBED_SCHEMAS` (a directory), else from the team's
//! shared copy beside the repository (`../shared/om-schemas-2.0`, with its
//! `SOURCE.md` naming the release); each file is minified on the way in.
//! Without either, nothing is embedded and the binary asks for `--schemas`.

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-env-changed=SECRET_BROKER_EMBED_SCHEMAS");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let dir = std::env::var_os("SECRET_BROKER_EMBED_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../shared/om-schemas-2.0"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    if dir.is_dir() {
        collect(&dir, &dir, &mut files)?;
    } else {
        println!(
            "cargo:warning=no OpenMetadata schemas at {} (set SECRET_BROKER_EMBED_SCHEMAS): \
             the binary will ask for --schemas",
            dir.display()
        );
    }
    files.sort();
    let release = std::fs::read_to_string(dir.join("SOURCE.md"))
        .ok()
        .and_then(|text| {
            let start = text.find("openmetadata-ingestion==")? + "openmetadata-ingestion==".len();
            let rest = &text[start..];
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
            Some(rest[..end].to_owned())
        });
    let mut code =
        String::from("/// The embedded schema files: path under the schema root, JSON text.\n");
    code.push_str("pub static FILES: &[(&str, &str)] = &[\n");
    let store = out.join("schemas");
    for (i, rel) in files.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(rel))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", rel.display()))?;
        let target = store.join(format!("{i}.json"));
        std::fs::create_dir_all(&store)?;
        std::fs::write(&target, serde_json::to_string(&value)?)?;
        code.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            rel.to_string_lossy(),
            target.display().to_string()
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!(
        "/// The OpenMetadata release the embedded schemas are for.\npub const RELEASE: Option<&str> = {:?};\n",
        release.as_ref().filter(|_| !files.is_empty())
    ));
    let help = match (&release, files.is_empty()) {
        (Some(release), false) => format!(
            "A directory of OpenMetadata's JSON Schemas (openmetadata-spec's \
             src/main/resources/json/schema), for an OpenMetadata newer than the one \
             embedded: OpenMetadata {release} ({} files)",
            files.len()
        ),
        _ => "A directory of OpenMetadata's JSON Schemas (openmetadata-spec's \
              src/main/resources/json/schema): this binary embeds none"
            .to_owned(),
    };
    code.push_str(&format!(
        "/// `--schemas`'s help, naming the embedded release.\npub const HELP: &str = {help:?};\n"
    ));
    std::fs::write(out.join("embedded_schemas.rs"), code)?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        entries.push(entry?.path());
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}
