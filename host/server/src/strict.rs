//! Strict request parsing: a parsed JSON body as an operation's typed request.
//!
//! Two things serde's own JSON deserializer does not give: a JSON array where
//! an object is expected is refused (serde's derived structs also take their
//! members as a sequence, so `["x"]` would read as `{"id": "x"}`), and every
//! error is built from what went wrong and where (the kind of JSON found, what
//! the type expected, the path of declared member names and array indexes),
//! never from the request's text: no value, no unknown member's name, no
//! unknown variant and no map key can appear in a message, whatever characters
//! they hold.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use serde_json::Value;

/// Why a body does not fit a request type, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    path: Vec<Segment>,
    path_set: bool,
    what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A member the type declares.
    Member(&'static str),
    /// An element of an array.
    Index(usize),
    /// A member the type does not name (a map's key): withheld.
    Withheld,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// A JSON value of the wrong kind.
    Type {
        found: &'static str,
        expected: String,
    },
    /// A value of the right kind the type does not take.
    Value {
        found: &'static str,
        expected: String,
    },
    /// An array of the wrong length.
    Length { len: usize, expected: String },
    /// A string naming no variant.
    Variant { expected: &'static [&'static str] },
    /// A member the type does not have.
    Member { expected: &'static [&'static str] },
    /// A member the type requires.
    Missing(&'static str),
    /// A member given twice.
    Duplicate(&'static str),
    /// Any other refusal by the type (its message may hold the value: dropped).
    Other,
}

impl Problem {
    fn new(what: What) -> Self {
        Problem {
            path: Vec::new(),
            path_set: false,
            what,
        }
    }

    /// Places the problem at `path` unless a deeper call already did.
    fn at(mut self, path: &[Segment]) -> Self {
        if !self.path_set {
            self.path = path.to_vec();
            self.path_set = true;
        }
        self
    }

    /// Where the problem is: `authType.password`, `Tags[2].Key`, or `the body`.
    pub fn path(&self) -> String {
        if self.path.is_empty() {
            return "the body".into();
        }
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Member(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Withheld => out.push_str("[(a key, withheld)]"),
            }
        }
        out
    }

    /// What is wrong, without where.
    pub fn what(&self) -> String {
        fn list(names: &[&str]) -> String {
            match names {
                [] => "none".into(),
                names => names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }
        match &self.what {
            What::Type { found, expected } => format!("expected {expected}, found {found}"),
            What::Value { found, expected } => {
                format!("{found} that is not {expected}")
            }
            What::Length { len, expected } => {
                format!("an array of {len} element(s), expected {expected}")
            }
            What::Variant { expected } => {
                format!(
                    "a name this member does not take (one of {})",
                    list(expected)
                )
            }
            What::Member { expected } => format!(
                "a member this operation does not take (name withheld; it takes {})",
                list(expected)
            ),
            What::Missing(name) => format!("the member `{name}` is missing"),
            What::Duplicate(name) => format!("the member `{name}` is given twice"),
            What::Other => "a value this operation does not take there".into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.what())
    }
}

impl std::error::Error for Problem {}

/// The kind of an unexpected value, without the value.
fn kind(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::NewtypeStruct | Unexpected::NewtypeVariant => "a value",
        Unexpected::Seq | Unexpected::TupleVariant => "an array",
        Unexpected::Map | Unexpected::StructVariant => "an object",
        Unexpected::Enum | Unexpected::UnitVariant => "a name",
        Unexpected::Other(_) => "a value",
    }
}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Problem::new(What::Other)
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Problem::new(What::Type {
            found: kind(&unexp),
            expected: exp.to_string(),
        })
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Problem::new(What::Value {
            found: kind(&unexp),
            expected: exp.to_string(),
        })
    }
    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Problem::new(What::Length {
            len,
            expected: exp.to_string(),
        })
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Problem::new(What::Variant { expected })
    }
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        Problem::new(What::Member { expected })
    }
    fn missing_field(field: &'static str) -> Self {
        Problem::new(What::Missing(field))
    }
    fn duplicate_field(field: &'static str) -> Self {
        Problem::new(What::Duplicate(field))
    }
}

/// `value` as the request `T`.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, Problem> {
    T::deserialize(Strict {
        value,
        path: Vec::new(),
    })
}

/// Overwrites every string of `value` (keys included) before it is dropped:
/// a parsed body may hold a secret.
pub fn wipe(value: Value) {
    use zeroize::Zeroize as _;
    match value {
        Value::String(mut s) => s.zeroize(),
        Value::Array(items) => items.into_iter().for_each(wipe),
        Value::Object(map) => {
            for (mut key, value) in map {
                key.zeroize();
                wipe(value);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// One node of the body, with its path.
struct Strict<'a> {
    value: &'a Value,
    path: Vec<Segment>,
}

impl<'a> Strict<'a> {
    fn child(&self, value: &'a Value, segment: Segment) -> Strict<'a> {
        let mut path = self.path.clone();
        path.push(segment);
        Strict { value, path }
    }

    fn found(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    fn wrong(&self, expected: &str) -> Problem {
        Problem::new(What::Type {
            found: self.found(),
            expected: expected.into(),
        })
        .at(&self.path)
    }

    fn map<V: Visitor<'a>>(
        &self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.value {
            Value::Object(map) => visitor
                .visit_map(Members {
                    iter: map.iter(),
                    pending: None,
                    fields,
                    path: &self.path,
                })
                .map_err(|e| e.at(&self.path)),
            _ => Err(self.wrong("an object")),
        }
    }
}

impl<'a> de::Deserializer<'a> for Strict<'a> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Problem> {
        let out = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(de::Error::custom("a number")),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Elements {
                iter: items.iter().enumerate(),
                path: &self.path,
            }),
            Value::Object(_) => return self.map(None, visitor),
        };
        out.map_err(|e| e.at(&self.path))
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.value {
            Value::Array(_) => self.deserialize_any(visitor),
            _ => Err(self.wrong("an array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.map(None, visitor)
    }

    /// Only an object: never an array read member by member.
    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        self.map(Some(fields), visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        let path = self.path.clone();
        let value = self.value;
        let single = match value {
            Value::Object(map) if map.len() == 1 => map.iter().next(),
            _ => None,
        };
        let access = match (value, single) {
            (Value::String(name), _) => Variant {
                name,
                content: None,
                node: self,
            },
            (_, Some((name, content))) => Variant {
                name,
                content: Some(content),
                node: self,
            },
            _ => {
                return Err(Problem::new(What::Type {
                    found: self.found(),
                    expected: format!(
                        "one of {}",
                        variants
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
                .at(&path));
            }
        };
        visitor.visit_enum(access).map_err(|e| e.at(&path))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct identifier
    }
}

struct Elements<'a, 'p> {
    iter: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: &'p [Segment],
}

impl<'a> SeqAccess<'a> for Elements<'a, '_> {
    type Error = Problem;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Problem> {
        let Some((i, value)) = self.iter.next() else {
            return Ok(None);
        };
        // The node places any error at its own path.
        let mut path = self.path.to_vec();
        path.push(Segment::Index(i));
        seed.deserialize(Strict { value, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Members<'a, 'p> {
    iter: serde_json::map::Iter<'a>,
    pending: Option<(&'a str, &'a Value)>,
    /// The members a struct declares; `None` for a map.
    fields: Option<&'static [&'static str]>,
    path: &'p [Segment],
}

impl<'a> MapAccess<'a> for Members<'a, '_> {
    type Error = Problem;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Problem> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.pending = Some((key.as_str(), value));
        let key: de::value::BorrowedStrDeserializer<'a, Problem> =
            de::value::BorrowedStrDeserializer::new(key.as_str());
        seed.deserialize(key).map(Some).map_err(|e| e.at(self.path))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Problem> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| <Problem as de::Error>::custom("a value before its key"))?;
        let segment = self
            .fields
            .and_then(|fields| fields.iter().find(|f| **f == key))
            .map_or(Segment::Withheld, |f| Segment::Member(f));
        // The node places any error at its own path.
        let mut path = self.path.to_vec();
        path.push(segment);
        seed.deserialize(Strict { value, path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Variant<'a> {
    name: &'a str,
    content: Option<&'a Value>,
    node: Strict<'a>,
}

impl<'a> EnumAccess<'a> for Variant<'a> {
    type Error = Problem;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'a>>(self, seed: V) -> Result<(V::Value, Self), Problem> {
        let name: de::value::BorrowedStrDeserializer<'a, Problem> =
            de::value::BorrowedStrDeserializer::new(self.name);
        let value = seed.deserialize(name)?;
        Ok((value, self))
    }
}

impl<'a> VariantAccess<'a> for Variant<'a> {
    type Error = Problem;

    fn unit_variant(self) -> Result<(), Problem> {
        match self.content {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(self.node.wrong("a name alone")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, Problem> {
        match self.content {
            Some(content) => seed.deserialize(self.node.child(content, Segment::Withheld)),
            None => Err(self.node.wrong("an object with the variant's value")),
        }
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Problem> {
        match self.content {
            Some(content) => de::Deserializer::deserialize_seq(
                self.node.child(content, Segment::Withheld),
                visitor,
            ),
            None => Err(self.node.wrong("an object with the variant's value")),
        }
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.content {
            Some(content) => de::Deserializer::deserialize_struct(
                self.node.child(content, Segment::Withheld),
                "",
                fields,
                visitor,
            ),
            None => Err(self.node.wrong("an object with the variant's value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Put {
        id: String,
        #[allow(dead_code)]
        limit: Option<u32>,
        #[serde(default)]
        #[allow(dead_code)]
        tags: Vec<Tag>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        #[allow(dead_code)]
        key: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Bot,
        Connection,
    }

    const CANARY: &str = "hunter2-\"quoted\\\\-canary";

    /// An object from pairs (a key may be any text).
    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn an_object_parses() {
        let put: Put =
            from_value(&json!({"id": "x", "tags": [{"Key": "k"}], "kind": "bot"})).expect("fits");
        assert_eq!(put.id, "x");
        assert_eq!(put.kind, Some(Kind::Bot));
    }

    #[test]
    fn an_array_is_not_an_object_at_any_depth() {
        let e = from_value::<Put>(&json!(["x"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the body: expected an object, found an array"
        );
        let e = from_value::<Put>(&json!({"id": "x", "tags": [["k"]]})).unwrap_err();
        assert_eq!(e.to_string(), "tags[0]: expected an object, found an array");
    }

    /// No message holds any part of a value, an unknown member's name or an
    /// unknown variant, whatever characters they hold.
    #[test]
    fn no_message_echoes_the_request() {
        let bodies = [
            json!({"id": ["x"], "limit": 1}),
            json!({"id": CANARY, "limit": CANARY}),
            json!({"id": "x", "limit": 5_000_000_000u64}),
            obj(&[("id", json!("x")), (CANARY, json!(1))]),
            json!({"id": "x", "kind": CANARY}),
            obj(&[
                ("id", json!("x")),
                ("kind", obj(&[(CANARY, json!(CANARY))])),
            ]),
            obj(&[
                ("id", json!("x")),
                (
                    "tags",
                    json!([obj(&[("Key", obj(&[(CANARY, json!(CANARY))]))])]),
                ),
            ]),
            json!(CANARY),
            json!({"limit": 1}),
        ];
        for body in bodies {
            let e = from_value::<Put>(&body).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("quoted"), "{e}");
        }
        let e = from_value::<Put>(&obj(&[("id", json!("x")), (CANARY, json!(1))])).unwrap_err();
        assert!(e.what().contains("name withheld"), "{e}");
        assert!(e.what().contains("`id`"), "{e}");
        let e = from_value::<Put>(&json!({"limit": 1})).unwrap_err();
        assert_eq!(e.to_string(), "the body: the member `id` is missing");
        let e = from_value::<Put>(&json!({"id": "x", "limit": "7"})).unwrap_err();
        assert_eq!(e.path(), "limit");
        let e = from_value::<Put>(&json!({"id": "x", "kind": "robot"})).unwrap_err();
        assert_eq!(e.path(), "kind");
        assert!(e.what().contains("`bot`, `connection`"), "{e}");
    }

    #[test]
    fn a_map_key_is_withheld_from_the_path() {
        #[derive(Deserialize, Debug)]
        struct Labels {
            #[allow(dead_code)]
            labels: std::collections::HashMap<String, u32>,
        }
        let e =
            from_value::<Labels>(&obj(&[("labels", obj(&[(CANARY, json!("x"))]))])).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.starts_with("labels[(a key, withheld)]"), "{text}");
    }
}
