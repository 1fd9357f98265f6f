//! `grpc.health.v1.Health` through the gateway: `Check` and `Watch` for a public service
//! (`mercato.catalog.v1.CatalogService`) are answered by the upstream that serves it, so a
//! client or a probe outside the cluster sees that service's real health; the empty name is
//! the gateway's own health, and any other name is NOT_FOUND (from the gateway's own health
//! service, which knows only itself).

use bytes::Bytes;
use prost::Message as _;
use tonic_health::pb::HealthCheckRequest;

use crate::body::BodyError;

/// Paths of the health RPCs whose service name decides who answers.
pub const CHECK: &str = "/grpc.health.v1.Health/Check";
/// See [`CHECK`].
pub const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// Whether `path` is a health RPC naming a service.
pub fn is_health(path: &str) -> bool {
    path == CHECK || path == WATCH
}

/// The service named by a health request body (one gRPC frame of `HealthCheckRequest`).
pub fn service_name(body: &Bytes) -> Result<String, BodyError> {
    let malformed = |reason: &str| BodyError::Malformed {
        reason: reason.to_owned(),
    };
    let header = body
        .get(..5)
        .ok_or_else(|| malformed("no complete gRPC frame"))?;
    if header[0] != 0 {
        return Err(malformed("compressed health requests are not accepted"));
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let payload = usize::try_from(length)
        .ok()
        .and_then(|length| body.get(5..5 + length).filter(|_| body.len() == 5 + length))
        .ok_or_else(|| malformed("the length prefix does not match the body"))?;
    HealthCheckRequest::decode(payload)
        .map(|request| request.service)
        .map_err(|_| malformed("not a grpc.health.v1.HealthCheckRequest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(service: &str) -> Bytes {
        let payload = HealthCheckRequest {
            service: service.to_owned(),
        }
        .encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&payload);
        out.into()
    }

    #[test]
    fn the_service_name_is_read_from_the_request() {
        assert_eq!(
            service_name(&frame("mercato.catalog.v1.CatalogService")).unwrap(),
            "mercato.catalog.v1.CatalogService"
        );
        assert_eq!(service_name(&frame("")).unwrap(), "");
        let mut truncated = frame("x").to_vec();
        truncated.pop();
        assert!(service_name(&truncated.into()).is_err());
        assert!(service_name(&Bytes::from_static(b"\x00\x00")).is_err());
    }
}
