//! `/openapi.json`: an OpenAPI 3.1 document generated from the same route table and
//! descriptors the gateway serves with, so it cannot drift from the REST surface. Schemas
//! follow the proto3 JSON mapping (lowerCamelCase, 64-bit integers as strings, enums by
//! name, well-known types in their JSON forms); descriptions are the proto comments.

use std::collections::{BTreeMap, BTreeSet};

use mercato_kernel::auth::Rule;
use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::rest::routes::{BodyRule, Route, RouteTable};

/// Nested messages flattened into query parameters at most this deep (`a.b.c`).
const QUERY_DEPTH: usize = 3;

/// The names of the path parameters of every template shape (see
/// [`PathTemplate::shape`](crate::rest::template::PathTemplate::shape)). OpenAPI 3.1 treats
/// `/v1/products/{id}` and `/v1/products/{product.id}` as one path, so templates of one shape
/// share one set of names: the last step of each variable's field path in the first template
/// of that shape (`product.id` → `id`), or the whole path (`product_id`-style, dots as `_`)
/// where two variables would share a name. Each parameter says the field it binds
/// (`x-mercato-field`); the transcoder binds by template, so nothing changes for callers.
fn parameter_names(table: &RouteTable) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in table.routes() {
        names.entry(route.template.shape()).or_insert_with(|| {
            let variables = route.template.variables();
            let last: Vec<String> = variables
                .iter()
                .map(|v| v.field_path.last().cloned().unwrap_or_default())
                .collect();
            let unique = last.iter().collect::<BTreeSet<_>>().len() == last.len();
            if unique {
                last
            } else {
                variables.iter().map(|v| v.field_path.join("_")).collect()
            }
        });
    }
    names
}

/// The document for `table`.
pub fn document(table: &RouteTable) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let names = parameter_names(table);
    for route in table.routes() {
        let route_names = names
            .get(&route.template.shape())
            .cloned()
            .unwrap_or_default();
        let operation = operation(route, &route_names, &mut schemas);
        paths
            .entry(route.template.openapi_path_named(&route_names))
            .or_default()
            .insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    let mut components = schemas.finish();
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mercato API",
            "version": "v1",
            "description": "REST/JSON surface of the Mercato mesh, transcoded from gRPC by the edge gateway. Every operation is also callable as native gRPC and gRPC-web on the same port.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "responses": {
                "Error": {
                    "description": "A gRPC status as JSON; the HTTP status follows the gRPC code.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        },
        "security": [{"bearerAuth": []}],
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "google.rpc.Code"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": true,
                },
            },
        },
    })
}

fn operation(route: &Route, names: &[String], schemas: &mut Schemas) -> Value {
    let method = &route.method;
    let descriptor = &method.descriptor;
    let service = descriptor.parent_service();
    let mut parameters = Vec::new();
    let mut path_names = BTreeSet::new();
    for (i, (var, fields)) in route
        .template
        .variables()
        .iter()
        .zip(&route.path_fields)
        .enumerate()
    {
        let field = var.field_path.join(".");
        let name = names.get(i).cloned().unwrap_or_else(|| field.clone());
        path_names.insert(
            fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join("."),
        );
        if let Some(leaf) = fields.last() {
            parameters.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": schemas.field(leaf),
                "description": comment(&leaf.parent_file(), leaf.path()).unwrap_or_default(),
                "x-mercato-field": field,
            }));
        }
    }
    let mut operation = Map::new();
    operation.insert(
        "operationId".into(),
        json!(format!("{}_{}", service.name(), descriptor.name())),
    );
    operation.insert("tags".into(), json!([service.name()]));
    if let Some(text) = comment(&descriptor.parent_file(), descriptor.path()) {
        operation.insert("summary".into(), json!(first_sentence(&text)));
        operation.insert("description".into(), json!(text));
    }
    let input = descriptor.input();
    match &route.body {
        BodyRule::All => {
            // Fields bound by the path are not part of the body.
            let schema = if path_names.is_empty() {
                schemas.message(&input)
            } else {
                let mut properties = Map::new();
                for field in input.fields() {
                    if !path_names.contains(field.name()) {
                        properties.insert(field.json_name().to_owned(), schemas.property(&field));
                    }
                }
                json!({"type": "object", "properties": properties})
            };
            operation.insert(
                "requestBody".into(),
                json!({"content": {"application/json": {"schema": schema}}}),
            );
        }
        BodyRule::Field(field) => {
            operation.insert(
                "requestBody".into(),
                json!({"content": {"application/json": {"schema": schemas.field(field)}}}),
            );
            let mut skip = path_names.clone();
            skip.insert(field.name().to_owned());
            query_parameters(&input, "", &skip, 0, schemas, &mut parameters);
        }
        BodyRule::None => {
            query_parameters(&input, "", &path_names, 0, schemas, &mut parameters);
        }
    }
    operation.insert("parameters".into(), Value::Array(parameters));
    let output = schemas.message(&descriptor.output());
    let content = if method.server_streaming() {
        json!({
            "application/x-ndjson": {"schema": output},
            "text/event-stream": {"schema": {"type": "string", "description": "`data: <JSON message>` events"}},
        })
    } else {
        json!({"application/json": {"schema": output}})
    };
    let success = if method.server_streaming() {
        "A stream of messages, one JSON document per line (or server-sent events when asked with `Accept: text/event-stream`); an error ends it as `{\"error\": …}`."
    } else {
        "OK"
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": {"description": success, "content": content},
            "default": {"$ref": "#/components/responses/Error"},
        }),
    );
    if method.rule == Rule::Public {
        operation.insert("security".into(), json!([]));
    }
    if let Rule::Roles(roles) = &method.rule {
        operation.insert("x-mercato-roles".into(), json!(roles));
    }
    Value::Object(operation)
}

fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    skip: &BTreeSet<String>,
    depth: usize,
    schemas: &mut Schemas,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        let proto_path = format!("{prefix}{}", field.name());
        if skip.contains(&proto_path) || field.is_map() {
            continue;
        }
        if let Kind::Message(inner) = field.kind()
            && !is_scalar_like(&inner)
        {
            if !field.is_list() && depth + 1 < QUERY_DEPTH {
                query_parameters(
                    &inner,
                    &format!("{proto_path}."),
                    skip,
                    depth + 1,
                    schemas,
                    out,
                );
            }
            continue;
        }
        out.push(json!({
            "name": proto_path,
            "in": "query",
            "required": false,
            "schema": schemas.field(&field),
            "description": comment(&field.parent_file(), field.path()).unwrap_or_default(),
        }));
    }
}

/// Well-known types whose JSON form is a single scalar.
fn is_scalar_like(message: &MessageDescriptor) -> bool {
    well_known(message.full_name()).is_some_and(|schema| {
        schema
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "object" && t != "array")
    })
}

fn well_known(name: &str) -> Option<Value> {
    Some(match name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "comma-separated lowerCamelCase field paths"})
        }
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "additionalProperties": true,
        }),
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": ["string", "null"], "format": "int64"})
        }
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": ["integer", "null"], "format": "int32"})
        }
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => {
            json!({"type": ["string", "null"], "contentEncoding": "base64"})
        }
        _ => return None,
    })
}

/// Component schemas, collected as operations reference them.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
    pending: Vec<MessageDescriptor>,
    enums: BTreeMap<String, Value>,
}

impl Schemas {
    fn reference(name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.done.contains_key(&name) && !self.pending.iter().any(|m| m.full_name() == name) {
            self.pending.push(message.clone());
        }
        Self::reference(&name)
    }

    fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map()
            && let Kind::Message(entry) = field.kind()
        {
            let value = entry.map_entry_value_field();
            return json!({"type": "object", "additionalProperties": self.single(&value)});
        }
        let single = self.single(field);
        if field.is_list() {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    /// A field as a property: its schema with its comment and `google.api.field_behavior`
    /// (OUTPUT_ONLY → readOnly, INPUT_ONLY → writeOnly, REQUIRED said in the description;
    /// not in `required`, since partial updates may leave it out).
    fn property(&mut self, field: &FieldDescriptor) -> Value {
        let schema = self.field(field);
        let behaviors = field_behaviors(field);
        let mut extra = Map::new();
        let mut text = comment(&field.parent_file(), field.path()).unwrap_or_default();
        if behaviors.contains(&REQUIRED) {
            text = format!("Required. {text}").trim_end().to_owned();
        }
        if !text.is_empty() {
            extra.insert("description".into(), json!(text));
        }
        if behaviors.contains(&OUTPUT_ONLY) {
            extra.insert("readOnly".into(), json!(true));
        }
        if behaviors.contains(&INPUT_ONLY) {
            extra.insert("writeOnly".into(), json!(true));
        }
        if extra.is_empty() {
            return schema;
        }
        match schema {
            Value::Object(mut object) if !object.contains_key("$ref") => {
                object.extend(extra);
                Value::Object(object)
            }
            other => {
                extra.insert("allOf".into(), json!([other]));
                Value::Object(extra)
            }
        }
    }

    fn single(&mut self, field: &FieldDescriptor) -> Value {
        match field.kind() {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(descriptor) => {
                let name = descriptor.full_name().to_owned();
                self.enums.entry(name.clone()).or_insert_with(|| {
                    let values: Vec<String> =
                        descriptor.values().map(|v| v.name().to_owned()).collect();
                    let mut schema = json!({"type": "string", "enum": values});
                    if let Some(text) = comment(&descriptor.parent_file(), descriptor.path()) {
                        schema["description"] = json!(text);
                    }
                    schema
                });
                Self::reference(&name)
            }
            Kind::Message(message) => self.message(&message),
        }
    }

    fn finish(mut self) -> Map<String, Value> {
        while let Some(message) = self.pending.pop() {
            let name = message.full_name().to_owned();
            if self.done.contains_key(&name) {
                continue;
            }
            // Reserve the name first: recursive messages refer to themselves.
            self.done.insert(name.clone(), Value::Null);
            let mut properties = Map::new();
            for field in message.fields() {
                properties.insert(field.json_name().to_owned(), self.property(&field));
            }
            let mut schema = json!({"type": "object", "properties": properties});
            if let Some(text) = comment(&message.parent_file(), message.path()) {
                schema["description"] = json!(text);
            }
            self.done.insert(name, schema);
        }
        let mut out: Map<String, Value> = self.done.into_iter().collect();
        out.extend(self.enums);
        out
    }
}

/// `google.api.FieldBehavior` numbers.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;
const INPUT_ONLY: i32 = 4;

/// The `google.api.field_behavior` values of `field`.
fn field_behaviors(field: &FieldDescriptor) -> Vec<i32> {
    let Some(extension) = field
        .parent_pool()
        .get_extension_by_name("google.api.field_behavior")
    else {
        return Vec::new();
    };
    let options = field.options();
    if !options.has_extension(&extension) {
        return Vec::new();
    }
    match options.get_extension(&extension).as_ref() {
        prost_reflect::Value::List(values) => {
            values.iter().filter_map(|v| v.as_enum_number()).collect()
        }
        _ => Vec::new(),
    }
}

/// The leading comment of the element at `path` in `file`.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
}

fn first_sentence(text: &str) -> String {
    match text.find(". ") {
        Some(end) => text[..=end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::Contracts;

    #[test]
    fn every_route_is_documented_with_its_schemas() {
        let contracts = Contracts::mercato().unwrap();
        let (table, _) = RouteTable::build(&contracts);
        let doc = document(&table);
        assert_eq!(doc["openapi"], "3.1.0");
        let names = parameter_names(&table);
        for route in table.routes() {
            let path = route
                .template
                .openapi_path_named(&names[&route.template.shape()]);
            let method = route.http_method.as_str().to_ascii_lowercase();
            assert!(doc["paths"][&path][&method].is_object(), "{method} {path}");
        }
        // Equivalent templates share one path and one parameter name.
        let mut shapes = BTreeSet::new();
        for path in doc["paths"].as_object().unwrap().keys() {
            let shape: String = path
                .split('{')
                .map(|part| part.split_once('}').map_or(part, |(_, rest)| rest))
                .collect::<Vec<_>>()
                .join("{}");
            assert!(shapes.insert(shape.clone()), "{path} is another {shape}");
        }
        let patch = &doc["paths"]["/v1/products/{id}"]["patch"];
        assert_eq!(patch["operationId"], "CatalogService_UpdateProduct");
        assert_eq!(patch["parameters"][0]["name"], "id");
        assert_eq!(patch["parameters"][0]["x-mercato-field"], "product.id");
        let get = &doc["paths"]["/v1/products/{id}"]["get"];
        assert_eq!(get["operationId"], "CatalogService_GetProduct");
        assert_eq!(get["security"], json!([]));
        assert_eq!(get["parameters"][0]["in"], "path");
        let list = &doc["paths"]["/v1/products"]["get"]["parameters"];
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "page_size")
        );
        let product = &doc["components"]["schemas"]["mercato.catalog.v1.Product"];
        assert_eq!(
            product["properties"]["createTime"]["type"], "string",
            "{product}"
        );
        // Every $ref resolves.
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}
