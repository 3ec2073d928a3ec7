//! Secret-field discovery from OpenMetadata's JSON Schemas: a field is secret when
//! its schema says `"format": "password"`, found through `$ref` (within a file and
//! across files), `allOf`, `oneOf`/`anyOf` (the branch is chosen by the config's
//! shape) and `definitions`/`$defs`. Array elements are keyed by their unique
//! `name`, else by `#<index>`. As in OpenMetadata's generated models, a member that
//! the schema does not describe where it says `additionalProperties: false` (on the
//! node, an `allOf` member or the chosen alternative) is an error: walked past, it
//! would be stored as it is, secret or not.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// Deepest nesting of schemas followed; OpenMetadata's go about 8 deep.
const MAX_DEPTH: usize = 64;

/// Why secret fields could not be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// The schema directory could not be read.
    #[error("reading schemas under {dir}: {message}")]
    Read {
        /// The directory.
        dir: String,
        /// What went wrong.
        message: String,
    },
    /// No schema for this connection type.
    #[error(
        "unknown {service} connection type {kind:?}: no schema at {file} (check `type` in the config)"
    )]
    UnknownType {
        /// The service type.
        service: String,
        /// The connection type.
        kind: String,
        /// The schema file looked for.
        file: String,
    },
    /// A schema this kind of entity needs is not in the schema directory.
    #[error(
        "no schema at {file} in the schema directory, needed for {needed_for}; \
         point --schemas at OpenMetadata's json/schema directory"
    )]
    Missing {
        /// The schema file, relative to the schema directory.
        file: String,
        /// What needs it.
        needed_for: String,
    },
    /// A `$ref` that points nowhere.
    #[error("schema {file}: `$ref` {reference} does not resolve")]
    BadRef {
        /// The file holding the reference.
        file: String,
        /// The reference.
        reference: String,
    },
    /// The config fits none of the alternatives of a `oneOf`/`anyOf`.
    #[error("the config at `{path}` matches none of the schema's alternatives ({choices})")]
    NoBranch {
        /// Where in the config, as a JSON path.
        path: String,
        /// The alternatives' titles.
        choices: String,
    },
    /// A config member its schema does not describe, where the schema allows no
    /// others: stored as it is, it could leave a secret in plaintext.
    #[error(
        "the config at `{path}` is not described by schema {file}, which allows no other \
         properties: nothing was stored. Remove it, or point --schemas at the schemas of the \
         OpenMetadata version that sent the config"
    )]
    Undescribed {
        /// Where in the config, as a JSON path.
        path: String,
        /// The schema file that allows no other properties.
        file: String,
    },
    /// Schemas nested deeper than any real one: a reference cycle.
    #[error("schema nesting deeper than {MAX_DEPTH} at `{0}`: a `$ref` cycle?")]
    TooDeep(String),
}

/// One step into a config document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A secret field found in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretField {
    /// Where the value sits in the config.
    pub location: Vec<Step>,
    /// The field path that names it in a secret id: property names, array elements
    /// by `name` or `#<index>`.
    pub field_path: Vec<String>,
}

/// Every schema file under a directory, parsed once.
#[derive(Debug, Default)]
pub struct SchemaSet {
    files: HashMap<PathBuf, Value>,
    /// `(service, type)` to the connection schema whose `type` names it:
    /// `SQLite` is `sqliteConnection.json`, which the name alone does not give.
    types: HashMap<(String, String), PathBuf>,
}

struct Walk<'a> {
    set: &'a SchemaSet,
    found: Vec<SecretField>,
}

impl SchemaSet {
    /// Reads every `*.json` under `dir`.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let mut set = SchemaSet::default();
        let err = |m: String| SchemaError::Read {
            dir: dir.display().to_string(),
            message: m,
        };
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| err(format!("{}: {e}", d.display())))? {
                let path = entry.map_err(|e| err(e.to_string()))?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|x| x == "json") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    let value = serde_json::from_str(&text)
                        .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    let rel = path
                        .strip_prefix(dir)
                        .map(Path::to_path_buf)
                        .unwrap_or(path);
                    set.files.insert(rel, value);
                }
            }
        }
        set.index_types();
        Ok(set)
    }

    /// The schema files `files` gives (path under the schema root, JSON text),
    /// as [`SchemaSet::load`] reads them from a directory; `origin` names
    /// where they came from in errors.
    pub fn from_files<'a>(
        origin: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SchemaError> {
        let mut set = SchemaSet::default();
        for (path, text) in files {
            let value = serde_json::from_str(text).map_err(|e| SchemaError::Read {
                dir: origin.to_owned(),
                message: format!("{path}: {e}"),
            })?;
            set.files.insert(PathBuf::from(path), value);
        }
        set.index_types();
        Ok(set)
    }

    /// Maps each service connection's `type` values (its default, its enum) to
    /// its file.
    fn index_types(&mut self) {
        let mut types = HashMap::new();
        for (path, doc) in &self.files {
            let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
            let ["entity", "services", "connections", service, name] = parts[..] else {
                continue;
            };
            if !name.ends_with("Connection.json") || name == "serviceConnection.json" {
                continue;
            }
            let Some(ty) = doc.pointer("/properties/type") else {
                continue;
            };
            let mut kinds: Vec<String> = ty
                .get("default")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect();
            self.enum_values(path, ty, 0, &mut kinds);
            for kind in kinds {
                types
                    .entry((service.to_owned(), kind))
                    .or_insert_with(|| path.clone());
            }
        }
        self.types = types;
    }

    /// The string values a schema's `enum`s and `const`s allow, in any of its
    /// alternatives.
    fn enum_values(&self, file: &Path, schema: &Value, depth: usize, out: &mut Vec<String>) {
        let Ok((file, schema)) = self.flatten(file, schema) else {
            return;
        };
        if depth > 8 {
            return;
        }
        let values = schema.get("enum").and_then(Value::as_array);
        out.extend(
            values
                .into_iter()
                .flatten()
                .chain(schema.get("const"))
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        for key in ["allOf", "oneOf", "anyOf"] {
            for sub in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.enum_values(&file, sub, depth + 1, out);
            }
        }
    }

    /// The schema file of a service connection: `database` + `Mysql` →
    /// `entity/services/connections/database/mysqlConnection.json`.
    pub fn connection_schema(&self, service: &str, kind: &str) -> Result<PathBuf, SchemaError> {
        let mut chars = kind.chars();
        let stem: String = chars
            .next()
            .map(|c| c.to_ascii_lowercase())
            .into_iter()
            .chain(chars)
            .collect();
        if let Some(file) = self.types.get(&(service.to_owned(), kind.to_owned())) {
            return Ok(file.clone());
        }
        let file = PathBuf::from(format!(
            "entity/services/connections/{service}/{stem}Connection.json"
        ));
        if self.files.contains_key(&file) {
            Ok(file)
        } else {
            Err(SchemaError::UnknownType {
                service: service.into(),
                kind: kind.into(),
                file: file.display().to_string(),
            })
        }
    }

    /// The secret fields of `config` under the schema in `file`.
    pub fn secret_fields(
        &self,
        file: &Path,
        config: &Value,
    ) -> Result<Vec<SecretField>, SchemaError> {
        let schema = self.files.get(file).ok_or_else(|| SchemaError::BadRef {
            file: file.display().to_string(),
            reference: "(root)".into(),
        })?;
        let mut walk = Walk {
            set: self,
            found: Vec::new(),
        };
        walk.node(file, schema, config, &mut Vec::new(), &mut Vec::new(), 0)?;
        Ok(walk.found)
    }

    /// The secret fields of `config` under the first of `references` the set
    /// holds: a file relative to the schema directory with an optional
    /// `#/json/pointer` (`metadataIngestion/workflow.json#/definitions/sourceConfig`
    /// in upstream's files, `#/$defs/SourceConfig` in schemas rendered from the
    /// generated models).
    pub fn secret_fields_at(
        &self,
        references: &[&str],
        needed_for: &str,
        config: &Value,
    ) -> Result<Vec<SecretField>, SchemaError> {
        let found = references
            .iter()
            .find_map(|r| self.resolve(Path::new(""), r).ok());
        let Some((file, schema)) = found else {
            let first = references.first().copied().unwrap_or_default();
            let file = first.split_once('#').map_or(first, |(f, _)| f);
            if self.files.contains_key(Path::new(file)) {
                return Err(SchemaError::BadRef {
                    file: file.to_owned(),
                    reference: references.join(" or "),
                });
            }
            return Err(SchemaError::Missing {
                file: file.to_owned(),
                needed_for: needed_for.to_owned(),
            });
        };
        let mut walk = Walk {
            set: self,
            found: Vec::new(),
        };
        walk.node(&file, schema, config, &mut Vec::new(), &mut Vec::new(), 0)?;
        Ok(walk.found)
    }

    /// Follows `reference` from `file`: `other.json`, `other.json#/definitions/x`
    /// or `#/definitions/x`.
    fn resolve<'s>(
        &'s self,
        file: &Path,
        reference: &str,
    ) -> Result<(PathBuf, &'s Value), SchemaError> {
        let bad = || SchemaError::BadRef {
            file: file.display().to_string(),
            reference: reference.to_owned(),
        };
        let (path, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if path.is_empty() {
            file.to_path_buf()
        } else {
            normalize(&file.parent().unwrap_or(Path::new("")).join(path))
        };
        let doc = self.files.get(&target).ok_or_else(bad)?;
        let node = if pointer.is_empty() {
            Some(doc)
        } else {
            doc.pointer(pointer)
        };
        Ok((target, node.ok_or_else(bad)?))
    }
}

/// Resolves `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn json_path(location: &[Step]) -> String {
    let mut s = String::from("$");
    for step in location {
        match step {
            Step::Key(k) => {
                s.push('.');
                s.push_str(field_name(k));
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A JSON path, naming object members only when they look like property names
/// (a config's keys are request content: anything else is not repeated back).
fn field_name(key: &str) -> &str {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$' | b'@'));
    if plain { key } else { "<unprintable key>" }
}

impl SchemaSet {
    /// Follows a chain of `$ref`s to the schema that has content.
    fn flatten<'s>(
        &'s self,
        file: &Path,
        schema: &'s Value,
    ) -> Result<(PathBuf, &'s Value), SchemaError> {
        let (mut file, mut schema) = (file.to_path_buf(), schema);
        for _ in 0..MAX_DEPTH {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => (file, schema) = self.resolve(&file, reference)?,
                None => return Ok((file, schema)),
            }
        }
        Err(SchemaError::TooDeep(file.display().to_string()))
    }

    /// The schemas `value` is checked against at one node, as OpenMetadata's
    /// generated models merge them: the node, its `allOf` members and the
    /// `oneOf`/`anyOf` alternative its shape fits, each with `$ref`s followed.
    fn parts<'s>(
        &'s self,
        file: &Path,
        schema: &'s Value,
        value: &Value,
        location: &[Step],
        fit_depth: usize,
        out: &mut Vec<(PathBuf, &'s Value)>,
    ) -> Result<(), SchemaError> {
        // Every step pushes a part, so a cycle of `allOf` or alternatives ends here.
        if out.len() > MAX_DEPTH {
            return Err(SchemaError::TooDeep(json_path(location)));
        }
        let (file, schema) = self.flatten(file, schema)?;
        out.push((file.clone(), schema));
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.parts(&file, sub, value, location, fit_depth, out)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let branch = self.choose(&file, branches, value, location, fit_depth)?;
                self.parts(&file, branch, value, location, fit_depth, out)?;
            }
        }
        Ok(())
    }

    /// Picks the alternative the value's shape fits best, looking into nested
    /// objects (Datalake's three sources differ only inside `securityConfig`).
    /// `fit_depth` counts the fits this choice is nested in.
    fn choose<'s>(
        &self,
        file: &Path,
        branches: &'s [Value],
        value: &Value,
        location: &[Step],
        fit_depth: usize,
    ) -> Result<&'s Value, SchemaError> {
        let mut best: Option<(usize, &Value)> = None;
        for branch in branches {
            if let Some(score) = self.fit(file, branch, value, fit_depth + 1)
                && best.as_ref().is_none_or(|(s, _)| score > *s)
            {
                best = Some((score, branch));
            }
        }
        match best {
            Some((_, branch)) => Ok(branch),
            None => {
                let mut titles = Vec::new();
                for branch in branches {
                    let (_, resolved) = self.flatten(file, branch)?;
                    titles.push(
                        resolved
                            .get("title")
                            .and_then(Value::as_str)
                            .unwrap_or("untitled")
                            .to_owned(),
                    );
                }
                Err(SchemaError::NoBranch {
                    path: json_path(location),
                    choices: titles.join(", "),
                })
            }
        }
    }

    /// How well `value` fits `schema` (higher is better), or `None` when it
    /// cannot be an instance: wrong JSON type, a required property missing, a
    /// property the schema does not describe where it allows no others, or a
    /// member that fits none of its property's alternatives.
    fn fit(&self, file: &Path, schema: &Value, value: &Value, depth: usize) -> Option<usize> {
        if depth > 16 {
            return Some(0);
        }
        let mut parts = Vec::new();
        self.parts(file, schema, value, &[], depth, &mut parts)
            .ok()?;
        let mut score = 0;
        for (_, part) in &parts {
            // `type: "Mysql"` against `enum: ["Postgres"]` rules a branch out.
            if part
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.contains(value))
                || part.get("const").is_some_and(|c| c != value)
            {
                return None;
            }
            let ty = part.get("type").and_then(Value::as_str);
            let fits = match value {
                Value::Object(_) => matches!(ty, None | Some("object")),
                Value::String(_) => matches!(ty, None | Some("string")),
                Value::Number(_) => matches!(ty, None | Some("number") | Some("integer")),
                Value::Bool(_) => matches!(ty, None | Some("boolean")),
                Value::Array(_) => matches!(ty, None | Some("array")),
                Value::Null => matches!(ty, None | Some("null")),
            };
            if !fits {
                return None;
            }
        }
        let Value::Object(members) = value else {
            return Some(usize::from(!value.is_null()));
        };
        let required = parts
            .iter()
            .filter_map(|(_, p)| p.get("required").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str);
        for key in required {
            if !members.contains_key(key) {
                return None;
            }
        }
        score += 1;
        let closed = closed_part(&parts).is_some();
        for (key, member) in members {
            match described(&parts, key) {
                Some((file, sub)) => score += 1 + self.fit(file, sub, member, depth + 1)?,
                None if closed => return None,
                None => {}
            }
        }
        Some(score)
    }
}

/// The schema that describes member `key` among a node's parts: a property of
/// one of them, else the schema their `additionalProperties` give.
fn described<'p, 's>(
    parts: &'p [(PathBuf, &'s Value)],
    key: &str,
) -> Option<(&'p Path, &'s Value)> {
    parts
        .iter()
        .find_map(|(f, p)| {
            p.get("properties")
                .and_then(|props| props.get(key))
                .map(|sub| (f.as_path(), sub))
        })
        .or_else(|| {
            parts.iter().find_map(|(f, p)| {
                p.get("additionalProperties")
                    .filter(|a| a.is_object())
                    .map(|sub| (f.as_path(), sub))
            })
        })
}

/// The part that allows no properties beyond those described, if one does.
fn closed_part<'p>(parts: &'p [(PathBuf, &Value)]) -> Option<&'p Path> {
    parts
        .iter()
        .find(|(_, p)| p.get("additionalProperties") == Some(&Value::Bool(false)))
        .map(|(f, _)| f.as_path())
}

impl Walk<'_> {
    fn node(
        &mut self,
        file: &Path,
        schema: &Value,
        value: &Value,
        location: &mut Vec<Step>,
        field_path: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep(json_path(location)));
        }
        let mut parts = Vec::new();
        self.set
            .parts(file, schema, value, location, 0, &mut parts)?;
        let password = parts
            .iter()
            .any(|(_, p)| p.get("format").and_then(Value::as_str) == Some("password"));
        if password && value.is_string() {
            self.found.push(SecretField {
                location: location.clone(),
                field_path: field_path.clone(),
            });
            return Ok(());
        }
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    location.push(Step::Key(key.clone()));
                    match described(&parts, key) {
                        Some((file, sub)) => {
                            field_path.push(key.clone());
                            self.node(file, sub, member, location, field_path, depth + 1)?;
                            field_path.pop();
                        }
                        None => {
                            if let Some(file) = closed_part(&parts) {
                                return Err(SchemaError::Undescribed {
                                    path: json_path(location),
                                    file: file.display().to_string(),
                                });
                            }
                        }
                    }
                    location.pop();
                }
            }
            Value::Array(items) => {
                let Some((file, item_schema)) = parts
                    .iter()
                    .find_map(|(f, p)| p.get("items").map(|i| (f.clone(), i)))
                else {
                    return Ok(());
                };
                let names: Vec<Option<&str>> = items
                    .iter()
                    .map(|i| i.get("name").and_then(Value::as_str))
                    .collect();
                let unique = names.iter().all(Option::is_some) && {
                    let mut sorted: Vec<_> = names.iter().flatten().collect();
                    sorted.sort();
                    sorted.windows(2).all(|w| w[0] != w[1])
                };
                for (i, item) in items.iter().enumerate() {
                    let key = match names[i] {
                        Some(name) if unique => name.to_owned(),
                        _ => format!("#{i}"),
                    };
                    location.push(Step::Index(i));
                    field_path.push(key);
                    self.node(&file, item_schema, item, location, field_path, depth + 1)?;
                    field_path.pop();
                    location.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }
}
