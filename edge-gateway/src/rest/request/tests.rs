//! One test per AIP-127 rule, on the contracts of `transcode_test.proto`.

use std::sync::OnceLock;

use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{Value, json};

use super::*;
use crate::contracts::Contracts;
use crate::rest::response;
use crate::rest::routes::{Lookup, RouteTable};

fn table() -> &'static (Contracts, RouteTable) {
    static TABLE: OnceLock<(Contracts, RouteTable)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/src/rest/request");
        let protos = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
        let mut compiler = protox::Compiler::new([here, protos]).unwrap();
        compiler.include_imports(true);
        compiler.open_file("transcode_test.proto").unwrap();
        let contracts =
            Contracts::from_descriptor_set(&compiler.encode_file_descriptor_set()).unwrap();
        let (table, errors) = RouteTable::build(&contracts);
        assert!(errors.is_empty(), "{errors:?}");
        (contracts, table)
    })
}

/// The request message for `method target` with `body`, as JSON with proto field names.
fn transcode(method: &str, target: &str, body: &str) -> Result<Value, BadRequest> {
    let (_, table) = table();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let Lookup::Found(route, bindings) = table.find(&method, path) else {
        panic!("no route for {method} {path}");
    };
    let message = build(route, bindings, Some(query), body.as_bytes())?;
    Ok(as_json(&message))
}

fn as_json(message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut out = Vec::new();
    message
        .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn refused(method: &str, target: &str, body: &str) -> BadRequest {
    transcode(method, target, body).expect_err("should be refused")
}

#[test]
fn path_variables_bind_nested_fields_and_are_percent_decoded() {
    assert_eq!(
        transcode("GET", "/v1/shelves/s1/books/b%201", "").unwrap(),
        json!({"shelf": "s1", "book": {"id": "b 1"}})
    );
}

#[test]
fn a_named_body_field_takes_the_body_and_the_query_the_rest() {
    let request = transcode(
        "PATCH",
        "/v1/books/b1?update_mask=title,pageCount",
        r#"{"title": "Dune", "pageCount": "412"}"#,
    )
    .unwrap();
    assert_eq!(
        request,
        json!({
            "book": {"id": "b1", "title": "Dune", "page_count": "412"},
            "update_mask": "title,pageCount",
        })
    );
}

#[test]
fn body_star_takes_every_field_and_the_path_overrides_it() {
    let request = transcode(
        "POST",
        "/v1/shelves/s1/books",
        r#"{"shelf": "elsewhere", "book": {"title": "Dune"}, "requestId": "r-1"}"#,
    )
    .unwrap();
    assert_eq!(
        request,
        json!({"shelf": "s1", "book": {"title": "Dune"}, "request_id": "r-1"})
    );
}

#[test]
fn custom_verbs_route_to_their_method() {
    assert_eq!(
        transcode("POST", "/v1/books/b1:archive", r#"{"reason": "worn"}"#).unwrap(),
        json!({"id": "b1", "reason": "worn"})
    );
}

#[test]
fn an_empty_body_is_an_empty_message() {
    assert_eq!(
        transcode("POST", "/v1/books/b1:archive", "").unwrap(),
        json!({"id": "b1"})
    );
}

#[test]
fn query_parameters_fill_scalars_repeated_nested_and_well_known_types() {
    let request = transcode(
        "GET",
        "/v1/books?pageSize=5&tags=a&tags=b%20c&genre=GENRE_SCIENCE&filter.author.name=Le+Guin\
         &filter.minPages=100&after=2024-01-02T03:04:05Z&max_age=3.5s&in_print=true&exact=true\
         &cursor=AQID&min_rating=4.5&max_pages=900",
        "",
    )
    .unwrap();
    assert_eq!(
        request,
        json!({
            "page_size": 5,
            "tags": ["a", "b c"],
            "genre": "GENRE_SCIENCE",
            "filter": {"author": {"name": "Le Guin"}, "min_pages": "100"},
            "after": "2024-01-02T03:04:05Z",
            "max_age": "3.500s",
            "in_print": true,
            "exact": true,
            "cursor": "AQID",
            "min_rating": 4.5,
            "max_pages": "900",
        })
    );
}

#[test]
fn enums_in_the_query_are_read_by_name_or_number() {
    assert_eq!(
        transcode("GET", "/v1/books?genre=1", "").unwrap(),
        json!({"genre": "GENRE_FICTION"})
    );
}

#[test]
fn additional_bindings_are_routes_too() {
    assert_eq!(
        transcode("GET", "/v1/shelves/s9/books?page_size=2", "").unwrap(),
        json!({"shelf": "s9", "page_size": 2})
    );
}

#[test]
fn original_and_lower_camel_case_names_are_both_accepted() {
    let camel = transcode("PATCH", "/v1/books/b1", r#"{"pageCount": 7}"#).unwrap();
    let snake = transcode("PATCH", "/v1/books/b1", r#"{"page_count": "7"}"#).unwrap();
    assert_eq!(camel, snake);
}

#[test]
fn malformed_json_is_refused_with_its_position() {
    let bad = refused("POST", "/v1/books/b1:archive", "{\"reason\": ");
    assert_eq!(bad.field, "body");
    assert!(bad.description.contains("malformed JSON"), "{bad}");
    assert!(bad.description.contains("line 1"), "{bad}");
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let bad = refused(
        "POST",
        "/v1/books/b1:archive",
        r#"{"reason": "x", "colour": 1}"#,
    );
    assert_eq!(bad.field, "body");
    assert!(bad.description.contains("colour"), "{bad}");
}

#[test]
fn wrong_types_are_refused_with_their_position() {
    let bad = refused("PATCH", "/v1/books/b1", r#"{"title": 42}"#);
    assert_eq!(bad.field, "body (book)");
    assert!(bad.description.contains("column"), "{bad}");
    let bad = refused("PATCH", "/v1/books/b1", r#"{"pageCount": "many"}"#);
    assert!(bad.description.contains("column"), "{bad}");
}

#[test]
fn unknown_enum_names_are_refused() {
    let bad = refused("PATCH", "/v1/books/b1", r#"{"genre": "GENRE_POETRY"}"#);
    assert!(bad.description.contains("GENRE_POETRY"), "{bad}");
    let bad = refused("GET", "/v1/books?genre=POETRY", "");
    assert_eq!(bad.field, "genre");
    assert!(
        bad.description.contains("GENRE_FICTION"),
        "lists the names: {bad}"
    );
}

#[test]
fn bad_query_values_name_the_parameter() {
    let bad = refused("GET", "/v1/books?page_size=ten", "");
    assert_eq!(bad.field, "page_size");
    assert!(bad.description.contains("int32"), "{bad}");
    assert_eq!(refused("GET", "/v1/books?exact=yes", "").field, "exact");
    assert_eq!(
        refused("GET", "/v1/books?after=yesterday", "").field,
        "after"
    );
}

#[test]
fn unknown_and_misplaced_query_parameters_are_refused() {
    assert_eq!(
        refused("GET", "/v1/books?colour=red", "").description,
        "unknown query parameter"
    );
    let bad = refused("GET", "/v1/books?page_size=1&page_size=2", "");
    assert!(bad.description.contains("more than once"), "{bad}");
    let bad = refused("GET", "/v1/shelves/s1/books?shelf=s2", "");
    assert!(bad.description.contains("path"), "{bad}");
    let bad = refused("PATCH", "/v1/books/b1?book.title=x", "{}");
    assert!(bad.description.contains("body"), "{bad}");
    let bad = refused("POST", "/v1/books/b1:archive?reason=x", "{}");
    assert_eq!(bad.field, "query");
}

#[test]
fn a_body_on_a_method_without_one_is_refused() {
    let bad = refused("GET", "/v1/books", r#"{"page_size": 1}"#);
    assert_eq!(bad.field, "body");
}

#[test]
fn a_missing_path_field_is_named() {
    let (_, table) = table();
    assert_eq!(
        table.empty_path_field(&http::Method::GET, "/v1/shelves//books/b1"),
        Some("shelf".to_owned())
    );
    assert_eq!(
        table.empty_path_field(&http::Method::GET, "/v1/shelves/s1/books/"),
        Some("book.id".to_owned())
    );
    assert_eq!(
        table.empty_path_field(&http::Method::GET, "/v1/nothing/"),
        None
    );
}

#[test]
fn responses_use_proto3_json() {
    let (contracts, _) = table();
    let book = contracts
        .pool()
        .get_message_by_name("mercato.catalog.transcodetest.Book")
        .unwrap();
    let mut deserializer = serde_json::Deserializer::from_str(
        r#"{"id": "b1", "page_count": 12, "genre": 2, "publish_time": "2024-01-02T03:04:05Z"}"#,
    );
    let message = DynamicMessage::deserialize(book, &mut deserializer).unwrap();
    let json: Value = serde_json::from_slice(&response::to_json(&message).unwrap()).unwrap();
    assert_eq!(json["pageCount"], "12", "int64 as a string");
    assert_eq!(json["genre"], "GENRE_SCIENCE", "enums by name");
    assert_eq!(json["publishTime"], "2024-01-02T03:04:05Z");
    assert_eq!(json["title"], "", "scalars are written even when default");
    assert_eq!(json["tags"], json!([]));
    assert!(json.get("author").is_none(), "unset messages are left out");
}
