//! Builds the RPC's request message from an HTTP request, per `google.api.http` (AIP-127):
//! path variables (nested `{product.id}` included), then the body (`*` or one named field,
//! proto3 JSON through prost-reflect's serde), then query parameters for every field neither
//! the path nor the body binds (dotted `a.b=` for nested fields, repeated by repetition).
//! Everything that does not fit is a [`BadRequest`] naming where it failed.

use base64::Engine as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use serde::de::DeserializeSeed as _;
use tonic::Status;

use super::routes::{BodyRule, Route};
use super::template::Bindings;

/// Part of a request that does not fit the RPC's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct BadRequest {
    /// Where: `body`, a path variable or a query parameter, by proto field path.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

impl BadRequest {
    fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl From<BadRequest> for Status {
    fn from(bad: BadRequest) -> Self {
        mercato_kernel::error::invalid_argument(bad.field, bad.description)
    }
}

/// The request message of `route` from the path `bindings`, the raw `query` and the `body`.
pub fn build(
    route: &Route,
    bindings: Bindings,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, BadRequest> {
    let input = route.method.descriptor.input();
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    let mut message = match &route.body {
        BodyRule::All if has_body => parse_json(input.clone(), body, "body")?,
        BodyRule::Field(field) if has_body => {
            let mut message = DynamicMessage::new(input.clone());
            let value = parse_field_json(field, body)?;
            message.set_field(field, value);
            message
        }
        BodyRule::None if has_body => {
            return Err(BadRequest::new(
                "body",
                format!("{} takes no request body", route.http_method),
            ));
        }
        _ => DynamicMessage::new(input.clone()),
    };

    let mut bound: Vec<String> = Vec::new();
    for (fields, (names, value)) in route.path_fields.iter().zip(bindings) {
        let name = names.join(".");
        set_from_str(&mut message, fields, &value, &name)?;
        bound.push(field_path_name(fields));
    }

    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let body_field = match &route.body {
            BodyRule::All => {
                return Err(BadRequest::new(
                    "query",
                    "this method takes every field from the body; query parameters are not allowed",
                ));
            }
            BodyRule::Field(field) => Some(field.name().to_owned()),
            BodyRule::None => None,
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let fields = resolve_query(&input, &key)?;
            let name = field_path_name(&fields);
            let within =
                |prefix: &String| name == *prefix || name.starts_with(&format!("{prefix}."));
            if bound.iter().any(within) {
                return Err(BadRequest::new(&*key, "already bound by the path"));
            }
            if body_field.as_ref().is_some_and(within) {
                return Err(BadRequest::new(&*key, "belongs to the request body"));
            }
            let repeated = fields.last().is_some_and(FieldDescriptor::is_list);
            if !repeated && seen.contains(&name) {
                return Err(BadRequest::new(&*key, "given more than once"));
            }
            seen.push(name);
            set_from_str(&mut message, &fields, &value, &key)?;
        }
    }
    Ok(message)
}

fn field_path_name(fields: &[FieldDescriptor]) -> String {
    fields
        .iter()
        .map(FieldDescriptor::name)
        .collect::<Vec<_>>()
        .join(".")
}

/// Proto3 JSON → message; unknown fields, wrong types and unknown enum names are errors
/// located by line and column.
pub fn parse_json(
    descriptor: MessageDescriptor,
    json: &[u8],
    location: &str,
) -> Result<DynamicMessage, BadRequest> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        &mut deserializer,
        &DeserializeOptions::new(),
    )
    .and_then(|m| deserializer.end().map(|()| m))
    .map_err(|e| BadRequest::new(location, json_error(&e)))?;
    Ok(message)
}

fn json_error(err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("malformed JSON: {err}")
        }
        _ => err.to_string(),
    }
}

/// The value of a body field from its JSON.
fn parse_field_json(field: &FieldDescriptor, json: &[u8]) -> Result<Value, BadRequest> {
    let location = format!("body ({})", field.name());
    if let (Kind::Message(inner), false) = (field.kind(), field.is_list() || field.is_map()) {
        return parse_json(inner, json, &location).map(Value::Message);
    }
    // Anything else is read as `{"<field>": <body>}` through the parent message.
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| BadRequest::new(&location, json_error(&e)))?;
    let wrapper = serde_json::json!({ field.json_name(): value });
    let parent = field.parent_message().clone();
    let mut message =
        DynamicMessage::deserialize_with_options(parent, wrapper, &DeserializeOptions::new())
            .map_err(|e| BadRequest::new(&location, e.to_string()))?;
    Ok(message
        .take_field(field)
        .unwrap_or_else(|| Value::default_value_for_field(field)))
}

/// Resolves a query key (`page_size`, `pageSize`, `filter.min_price.units`): singular messages
/// along the way, a scalar, enum, well-known type or repeated scalar at the end.
fn resolve_query(input: &MessageDescriptor, key: &str) -> Result<Vec<FieldDescriptor>, BadRequest> {
    let mut current = input.clone();
    let mut fields = Vec::new();
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| BadRequest::new(key, "unknown query parameter"))?;
        let last = i + 1 == parts.len();
        if field.is_map() || (field.is_list() && !last) {
            return Err(BadRequest::new(key, "cannot be set from a query parameter"));
        }
        if !last {
            match field.kind() {
                Kind::Message(inner) => current = inner,
                _ => return Err(BadRequest::new(key, format!("{part} is not a message"))),
            }
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Sets (or, for repeated fields, appends) the field at `path` from its text form.
fn set_from_str(
    message: &mut DynamicMessage,
    path: &[FieldDescriptor],
    raw: &str,
    name: &str,
) -> Result<(), BadRequest> {
    let Some((last, parents)) = path.split_last() else {
        return Err(BadRequest::new(name, "empty field path"));
    };
    let value = scalar(last, raw).map_err(|why| BadRequest::new(name, why))?;
    let mut current = message;
    for field in parents {
        current = match current.get_field_mut(field) {
            Value::Message(inner) => inner,
            _ => return Err(BadRequest::new(name, "not a message field")),
        };
    }
    if last.is_list() {
        if let Value::List(list) = current.get_field_mut(last) {
            list.push(value);
        }
    } else {
        current.set_field(last, value);
    }
    Ok(())
}

/// A field's value from text (path segment or query value), as proto3 JSON reads strings.
pub fn scalar(field: &FieldDescriptor, raw: &str) -> Result<Value, String> {
    let number = |kind: &str| format!("{raw:?} is not a valid {kind}");
    Ok(match field.kind() {
        Kind::String => Value::String(raw.to_owned()),
        Kind::Bool => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("{raw:?} is not a boolean (true or false)")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(raw.parse().map_err(|_| number("int32"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(raw.parse().map_err(|_| number("int64"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(raw.parse().map_err(|_| number("uint32"))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(raw.parse().map_err(|_| number("uint64"))?),
        Kind::Float => Value::F32(float(raw).ok_or_else(|| number("float"))? as f32),
        Kind::Double => Value::F64(float(raw).ok_or_else(|| number("double"))?),
        Kind::Bytes => {
            let engine = base64::engine::general_purpose::STANDARD;
            let url_safe = base64::engine::general_purpose::URL_SAFE;
            let bytes = engine
                .decode(raw)
                .or_else(|_| url_safe.decode(raw))
                .map_err(|_| format!("{raw:?} is not base64"))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(descriptor) => {
            let value = descriptor
                .get_value_by_name(raw)
                .map(|v| v.number())
                .or_else(|| {
                    raw.parse::<i32>()
                        .ok()
                        .filter(|n| descriptor.get_value(*n).is_some())
                });
            match value {
                Some(number) => Value::EnumNumber(number),
                None => {
                    let names: Vec<String> =
                        descriptor.values().map(|v| v.name().to_owned()).collect();
                    return Err(format!(
                        "unknown {} value {raw:?}; expected one of {}",
                        descriptor.name(),
                        names.join(", ")
                    ));
                }
            }
        }
        Kind::Message(descriptor) => {
            // Well-known types with a string JSON form (Timestamp, Duration, FieldMask,
            // wrappers) read the text as that JSON string; BoolValue needs a JSON bool.
            let json = if descriptor.full_name() == "google.protobuf.BoolValue" {
                match raw {
                    "true" => serde_json::Value::Bool(true),
                    "false" => serde_json::Value::Bool(false),
                    _ => return Err(format!("{raw:?} is not a boolean (true or false)")),
                }
            } else {
                serde_json::Value::String(raw.to_owned())
            };
            let name = descriptor.full_name().to_owned();
            descriptor
                .deserialize(json)
                .map(Value::Message)
                .map_err(|e| format!("not a valid {name}: {e}"))?
        }
    })
}

fn float(raw: &str) -> Option<f64> {
    match raw {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => raw.parse().ok().filter(|f: &f64| f.is_finite()),
    }
}

#[cfg(test)]
mod tests;
