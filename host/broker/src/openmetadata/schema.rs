//! Secret-field discovery from OpenMetadata's JSON Schemas: a field is secret when
//! its schema says `"format": "password"`, found through `$ref` (within a file and
//! across files), `allOf`, `oneOf`/`anyOf` (the branch is chosen by the config's
//! shape) and `definitions`. Array elements are keyed by their unique `name`, else
//! by `#<index>`.

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
        Ok(set)
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

    /// The secret fields of `config` under the schema at `reference`, a file
    /// relative to the schema directory with an optional `#/json/pointer`
    /// (`metadataIngestion/workflow.json#/definitions/sourceConfig`).
    pub fn secret_fields_at(
        &self,
        reference: &str,
        needed_for: &str,
        config: &Value,
    ) -> Result<Vec<SecretField>, SchemaError> {
        let file = reference.split_once('#').map_or(reference, |(f, _)| f);
        if !self.files.contains_key(Path::new(file)) {
            return Err(SchemaError::Missing {
                file: file.to_owned(),
                needed_for: needed_for.to_owned(),
            });
        }
        let (file, schema) = self.resolve(Path::new(""), reference)?;
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
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
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
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (target, resolved) = self.set.resolve(file, reference)?;
            return self.node(&target, resolved, value, location, field_path, depth + 1);
        }
        if schema.get("format").and_then(Value::as_str) == Some("password") && value.is_string() {
            self.found.push(SecretField {
                location: location.clone(),
                field_path: field_path.clone(),
            });
            return Ok(());
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.node(file, sub, value, location, field_path, depth + 1)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let (bfile, branch) = self.choose(file, branches, value, location)?;
                self.node(&bfile, branch, value, location, field_path, depth + 1)?;
            }
        }
        match value {
            Value::Object(members) => {
                let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                    return Ok(());
                };
                for (key, member) in members {
                    if let Some(sub) = props.get(key) {
                        location.push(Step::Key(key.clone()));
                        field_path.push(key.clone());
                        self.node(file, sub, member, location, field_path, depth + 1)?;
                        field_path.pop();
                        location.pop();
                    }
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items") else {
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
                    self.node(file, item_schema, item, location, field_path, depth + 1)?;
                    field_path.pop();
                    location.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Picks the alternative the value's shape fits best, looking into nested
    /// objects (Datalake's three sources differ only inside `securityConfig`).
    fn choose<'s>(
        &self,
        file: &Path,
        branches: &'s [Value],
        value: &Value,
        location: &[Step],
    ) -> Result<(PathBuf, &'s Value), SchemaError> {
        let mut best: Option<(usize, &Value)> = None;
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
            if let Some(score) = self.fit(file, branch, value, 0)
                && best.as_ref().is_none_or(|(s, _)| score > *s)
            {
                best = Some((score, branch));
            }
        }
        match best {
            // Walk the branch as written: its `$ref` is followed from `file`.
            Some((_, branch)) => Ok((file.to_path_buf(), branch)),
            None => Err(SchemaError::NoBranch {
                path: json_path(location),
                choices: titles.join(", "),
            }),
        }
    }

    /// How well `value` fits `schema` (higher is better), or `None` when it
    /// cannot be an instance: wrong JSON type, a required property missing, an
    /// unknown property where the schema forbids them, or a member that fits
    /// none of its property's alternatives.
    fn fit(&self, file: &Path, schema: &Value, value: &Value, depth: usize) -> Option<usize> {
        let (file, schema) = self.flatten(file, schema).ok()?;
        if depth > 16 {
            return Some(0);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                return branches
                    .iter()
                    .filter_map(|b| self.fit(&file, b, value, depth + 1))
                    .max();
            }
        }
        let mut score = 0;
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                score += self.fit(&file, sub, value, depth + 1)?;
            }
        }
        // `type: "Mysql"` against `enum: ["Postgres"]` rules a branch out.
        if schema
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.contains(value))
        {
            return None;
        }
        if schema.get("const").is_some_and(|c| c != value) {
            return None;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let members = match value {
            Value::Object(members) => members,
            Value::String(_) => return matches!(ty, None | Some("string")).then_some(score + 1),
            Value::Number(_) => {
                return matches!(ty, None | Some("number") | Some("integer")).then_some(score + 1);
            }
            Value::Bool(_) => return matches!(ty, None | Some("boolean")).then_some(score + 1),
            Value::Array(_) => return matches!(ty, None | Some("array")).then_some(score + 1),
            Value::Null => return matches!(ty, None | Some("null")).then_some(score),
        };
        if ty.is_some_and(|t| t != "object") {
            return None;
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let required = schema.get("required").and_then(Value::as_array);
        if required.is_some_and(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .any(|k| !members.contains_key(k))
        }) {
            return None;
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        score += 1;
        for (key, member) in members {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => score += 1 + self.fit(&file, sub, member, depth + 1)?,
                None if closed => return None,
                None => {}
            }
        }
        Some(score)
    }

    /// Follows a chain of `$ref`s to the schema that has content.
    fn flatten<'s>(
        &'s self,
        file: &Path,
        schema: &'s Value,
    ) -> Result<(PathBuf, &'s Value), SchemaError> {
        let (mut file, mut schema) = (file.to_path_buf(), schema);
        for _ in 0..MAX_DEPTH {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => (file, schema) = self.set.resolve(&file, reference)?,
                None => return Ok((file, schema)),
            }
        }
        Err(SchemaError::TooDeep(file.display().to_string()))
    }
}
