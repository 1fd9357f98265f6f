//! The authorization matrix, generated from the descriptors: every RPC × {anonymous,
//! customer, another customer, admin, service} over native gRPC, and every REST route × the
//! same callers, must be admitted or refused exactly as its `mercato.auth.v1.policy`
//! declares. Upstreams are a catch-all stub, so what is measured is the gateway's own
//! decision — and a refused call must never reach an upstream.
//!
//! Ownership ("another customer") is the owning service's check, behind the gateway; here it
//! must be admitted like any customer.

use base64::Engine as _;
use edge_gateway::codec::DynamicCodec;
use edge_gateway::contracts::{Contracts, Method};
use edge_gateway::rest::routes::{BodyRule, RouteTable};
use mercato_kernel::auth::Rule;
use mercato_kernel::config::SERVICES;
use mercato_testkit::TestIdentity;
use prost_reflect::DynamicMessage;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::helpers::{Http, gateway, grpc};
use crate::stubs::CatchAll;

struct Caller {
    name: &'static str,
    token: Option<String>,
    roles: Vec<String>,
}

/// The roles a token carries (its payload, read without verification: the gateway verifies).
fn roles(token: &str) -> Vec<String> {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: serde_json::Value = serde_json::from_slice(&json).expect("JSON claims");
    claims["roles"]
        .as_array()
        .expect("roles claim")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// What the declared policy says the caller gets.
fn expected(method: &Method, caller: &Caller) -> Code {
    if method.is_internal() {
        return Code::Unimplemented;
    }
    match (&method.rule, &caller.token) {
        (Rule::Public, _) => Code::Ok,
        (_, None) => Code::Unauthenticated,
        (Rule::Authenticated, Some(_)) => Code::Ok,
        (Rule::Roles(allowed), Some(_)) if allowed.iter().any(|r| caller.roles.contains(r)) => {
            Code::Ok
        }
        _ => Code::PermissionDenied,
    }
}

async fn callers(identity: &TestIdentity) -> Vec<Caller> {
    let (_, customer) = identity.customer().await;
    let (_, other) = identity.customer().await;
    let admin = identity.admin_token().await;
    let service = identity.service_token().await;
    let mut out = vec![Caller {
        name: "anonymous",
        token: None,
        roles: Vec::new(),
    }];
    for (name, token) in [
        ("customer", customer),
        ("another customer", other),
        ("admin", admin),
        ("service", service),
    ] {
        out.push(Caller {
            name,
            roles: roles(&token),
            token: Some(token),
        });
    }
    out
}

async fn call_grpc(
    channel: tonic::transport::Channel,
    method: &Method,
    token: Option<&str>,
) -> Code {
    let mut request = tonic::Request::new(DynamicMessage::new(method.descriptor.input()));
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
        );
    }
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(method.path.as_str()).unwrap();
    let codec = DynamicCodec::new(method.descriptor.output());
    let outcome = if method.server_streaming() {
        match client.server_streaming(request, path, codec).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break Ok(()),
                        Err(status) => break Err(status),
                    }
                }
            }
            Err(status) => Err(status),
        }
    } else {
        client.unary(request, path, codec).await.map(|_| ())
    };
    match outcome {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        other => panic!("unexpected expectation {other:?}"),
    }
}

#[tokio::test]
async fn every_rpc_admits_exactly_the_callers_its_policy_declares() {
    let identity = TestIdentity::start().await;
    let (stub, url) = CatchAll::start().await;
    let upstreams: Vec<(&str, String)> = SERVICES.iter().map(|s| (*s, url.clone())).collect();
    let gw = gateway(
        &identity.url(),
        &upstreams,
        &[("MERCATO_RATE_LIMIT_RPS", "0")],
    )
    .await;
    let callers = callers(&identity).await;
    let contracts = Contracts::mercato().unwrap();
    let channel = grpc(gw.addr).await;

    let mut wrong = Vec::new();
    let mut admitted = 0;
    let methods = contracts.methods();
    assert!(methods.len() > 40, "the matrix covers every RPC");
    for method in &methods {
        for caller in &callers {
            let want = expected(method, caller);
            let got = call_grpc(channel.clone(), method, caller.token.as_deref()).await;
            if got != want {
                wrong.push(format!(
                    "gRPC {} as {}: {got:?}, declared {want:?}",
                    method.path, caller.name
                ));
            }
            admitted += usize::from(want == Code::Ok);
        }
    }

    let (table, _) = RouteTable::build(&contracts);
    let http = Http::new(gw.addr);
    for route in table.routes() {
        let path = placeholder_path(&route.template.openapi_path());
        let body = match route.body {
            BodyRule::None => None,
            _ => Some(serde_json::json!({})),
        };
        for caller in &callers {
            let want = expected(&route.method, caller);
            let reply = http
                .call(
                    route.http_method.as_str(),
                    &path,
                    caller.token.as_deref(),
                    body.clone(),
                )
                .await;
            if reply.status.as_u16() != http_status(want) {
                wrong.push(format!(
                    "REST {} {path} as {}: {} {}, declared {want:?}",
                    route.http_method,
                    caller.name,
                    reply.status,
                    reply.text()
                ));
            }
            admitted += usize::from(want == Code::Ok);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong decisions:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let seen = stub.seen();
    assert_eq!(
        seen.len(),
        admitted,
        "refused calls must never reach an upstream"
    );
    assert!(
        seen.iter().all(|call| contracts
            .method(&call.path)
            .is_some_and(|m| !m.is_internal())),
        "an internal RPC reached an upstream"
    );
}

/// `/v1/products/{product.id}:x` → `/v1/products/p1:x`.
fn placeholder_path(template: &str) -> String {
    let mut out = String::new();
    let mut in_var = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_var = true;
                out.push_str("p1");
            }
            '}' => in_var = false,
            _ if in_var => {}
            _ => out.push(c),
        }
    }
    out
}
