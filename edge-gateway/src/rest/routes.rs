//! The REST route table, built once from the `google.api.http` annotation of every public
//! RPC (its `additional_bindings` included). No route is written by hand.

use std::sync::Arc;

use mercato::google::api::HttpRule;
use mercato::google::api::http_rule::Pattern;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Value};

use super::template::{Bindings, PathTemplate, TemplateError};
use crate::contracts::{Contracts, Method};

/// Where the request message comes from besides the path.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: the remaining fields come from the query string.
    None,
    /// `body: "*"`: the body is the whole request message (minus path fields).
    All,
    /// `body: "field"`: the body is that field; the rest come from the query string.
    Field(FieldDescriptor),
}

/// One HTTP binding of an RPC.
#[derive(Debug, Clone)]
pub struct Route {
    /// GET, POST, …
    pub http_method: http::Method,
    /// The path template.
    pub template: PathTemplate,
    /// The RPC it calls.
    pub method: Arc<Method>,
    /// The body binding.
    pub body: BodyRule,
    /// The fields bound by the template's variables, in the same order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
}

/// An annotation that cannot be served; the RPC stays reachable over gRPC.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The template does not parse.
    #[error("{rpc}: {source}")]
    Template {
        /// The RPC.
        rpc: String,
        /// Why.
        source: TemplateError,
    },
    /// A path variable or the body names a field the request does not have.
    #[error("{rpc}: {reason}")]
    Field {
        /// The RPC.
        rpc: String,
        /// Why.
        reason: String,
    },
}

/// What a request path and method resolve to.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The route and the path variables' values.
    Found(&'a Route, Bindings),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<http::Method>),
    /// No route has this path.
    NotFound,
}

/// Every REST route, most specific first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// Resolves `product.id` against `message`: each step a singular field, every step but the
/// last a message.
pub fn resolve_path(
    message: &MessageDescriptor,
    path: &[String],
) -> Result<Vec<FieldDescriptor>, String> {
    let mut current = message.clone();
    let mut fields = Vec::with_capacity(path.len());
    for (i, name) in path.iter().enumerate() {
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))
            .ok_or_else(|| format!("{} has no field {name:?}", current.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("{name} is repeated"));
        }
        if i + 1 < path.len() {
            match field.kind() {
                Kind::Message(inner) => current = inner,
                _ => return Err(format!("{name} is not a message")),
            }
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The `google.api.http` rule of `method`, if annotated.
pub fn http_rule(contracts: &Contracts, method: &Method) -> Option<HttpRule> {
    let extension = contracts.pool().get_extension_by_name("google.api.http")?;
    let options = method.descriptor.options();
    if !options.has_extension(&extension) {
        return None;
    }
    match options.get_extension(&extension).as_ref() {
        Value::Message(message) => message.transcode_to::<HttpRule>().ok(),
        _ => None,
    }
}

fn pattern(rule: &HttpRule) -> Option<(http::Method, &str)> {
    Some(match rule.pattern.as_ref()? {
        Pattern::Get(p) => (http::Method::GET, p.as_str()),
        Pattern::Put(p) => (http::Method::PUT, p.as_str()),
        Pattern::Post(p) => (http::Method::POST, p.as_str()),
        Pattern::Delete(p) => (http::Method::DELETE, p.as_str()),
        Pattern::Patch(p) => (http::Method::PATCH, p.as_str()),
        Pattern::Custom(custom) => (
            http::Method::from_bytes(custom.kind.as_bytes()).ok()?,
            custom.path.as_str(),
        ),
    })
}

fn route(method: &Arc<Method>, rule: &HttpRule) -> Result<Option<Route>, RouteError> {
    let Some((http_method, template)) = pattern(rule) else {
        return Ok(None);
    };
    let template = PathTemplate::parse(template).map_err(|source| RouteError::Template {
        rpc: method.path.clone(),
        source,
    })?;
    let field_error = |reason: String| RouteError::Field {
        rpc: method.path.clone(),
        reason,
    };
    let input = method.descriptor.input();
    let path_fields = template
        .variables()
        .iter()
        .map(|var| resolve_path(&input, &var.field_path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(field_error)?;
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        name => BodyRule::Field(
            input
                .get_field_by_name(name)
                .ok_or_else(|| field_error(format!("body field {name:?} does not exist")))?,
        ),
    };
    if !rule.response_body.is_empty() {
        return Err(field_error("response_body is not supported".into()));
    }
    Ok(Some(Route {
        http_method,
        template,
        method: method.clone(),
        body,
        path_fields,
    }))
}

impl RouteTable {
    /// The routes of every public RPC of `contracts`, and the annotations that were skipped.
    pub fn build(contracts: &Contracts) -> (Self, Vec<RouteError>) {
        let mut routes = Vec::new();
        let mut errors = Vec::new();
        for method in contracts.methods() {
            // Internal RPCs have no REST surface even if someone annotates one.
            if method.is_internal() {
                continue;
            }
            let Some(rule) = http_rule(contracts, method) else {
                continue;
            };
            for binding in std::iter::once(&rule).chain(rule.additional_bindings.iter()) {
                match route(method, binding) {
                    Ok(Some(route)) => routes.push(route),
                    Ok(None) => {}
                    Err(err) => errors.push(err),
                }
            }
        }
        routes.sort_by(|a, b| {
            b.template
                .specificity()
                .cmp(&a.template.specificity())
                .then_with(|| a.template.as_str().cmp(b.template.as_str()))
        });
        (Self { routes }, errors)
    }

    /// Every route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and the raw (still percent-encoded) `path`.
    pub fn find(&self, method: &http::Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if let Some(bindings) = route.template.matches(path) {
                if route.http_method == method {
                    return Lookup::Found(route, bindings);
                }
                if !allowed.contains(&route.http_method) {
                    allowed.push(route.http_method.clone());
                }
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        }
    }

    /// For a path that matches no route only because a variable's segment is empty
    /// (`/v1/products/`), the field that is missing.
    pub fn empty_path_field(&self, method: &http::Method, path: &str) -> Option<String> {
        const PLACEHOLDER: &str = "%00missing";
        let filled = path
            .split('/')
            .enumerate()
            .map(|(i, s)| {
                if i > 0 && s.is_empty() {
                    PLACEHOLDER
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        if filled == path {
            return None;
        }
        match self.find(method, &filled) {
            Lookup::Found(_, bindings) => bindings
                .into_iter()
                .find(|(_, value)| value.contains("\0missing"))
                .map(|(field, _)| field.join(".")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let (table, errors) = RouteTable::build(&Contracts::mercato().unwrap());
        assert!(errors.is_empty(), "{errors:?}");
        table
    }

    fn rpc(lookup: Lookup<'_>) -> String {
        match lookup {
            Lookup::Found(route, _) => route.method.path.clone(),
            other => panic!("no route: {other:?}"),
        }
    }

    #[test]
    fn every_annotation_of_the_contracts_becomes_a_route() {
        let table = table();
        assert_eq!(
            rpc(table.find(&http::Method::GET, "/v1/products/p1")),
            "/mercato.catalog.v1.CatalogService/GetProduct"
        );
        assert_eq!(
            rpc(table.find(&http::Method::PATCH, "/v1/products/p1")),
            "/mercato.catalog.v1.CatalogService/UpdateProduct"
        );
        assert_eq!(
            rpc(table.find(&http::Method::GET, "/v1/users/me")),
            "/mercato.identity.v1.IdentityService/GetMe"
        );
    }

    #[test]
    fn a_custom_verb_wins_over_a_plain_variable() {
        let table = table();
        assert_eq!(
            rpc(table.find(&http::Method::GET, "/v1/orders/o1:watch")),
            "/mercato.orderquery.v1.OrderQueryService/WatchOrder"
        );
        assert_eq!(
            rpc(table.find(&http::Method::GET, "/v1/orders/o1")),
            "/mercato.orderquery.v1.OrderQueryService/GetOrder"
        );
        assert_eq!(
            rpc(table.find(&http::Method::POST, "/v1/basket:checkout")),
            "/mercato.basket.v1.BasketService/Checkout"
        );
    }

    #[test]
    fn wrong_methods_and_unknown_paths_are_told_apart() {
        let table = table();
        match table.find(&http::Method::PUT, "/v1/products") {
            Lookup::MethodNotAllowed(allowed) => {
                assert!(allowed.contains(&http::Method::GET));
                assert!(allowed.contains(&http::Method::POST));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            table.find(&http::Method::GET, "/v1/nothing"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn internal_rpcs_have_no_routes() {
        for route in table().routes() {
            assert!(!route.method.is_internal(), "{}", route.method.path);
        }
    }
}
