//! What the gateway knows about the mesh, read once from the compiled descriptor set: every
//! RPC's path, owning component, access rule and streaming shape. Nothing here is written per
//! service: a new RPC in `proto/` is routed, secured and transcoded by the same table.

use std::collections::HashMap;
use std::sync::Arc;

use mercato_kernel::auth::{PolicyError, PolicyTable, Rule};
use mercato_kernel::config::SERVICES;
use prost_reflect::{DescriptorPool, MethodDescriptor};

/// The descriptor set could not be turned into a method table.
#[derive(Debug, thiserror::Error)]
pub enum ContractsError {
    /// Not a valid encoded FileDescriptorSet.
    #[error("descriptor set: {0}")]
    Descriptor(#[from] prost_reflect::DescriptorError),
    /// The access policies could not be read.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// One RPC the gateway can route.
#[derive(Debug)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    /// Its descriptor (input and output types, options).
    pub descriptor: MethodDescriptor,
    /// The component that serves it, e.g. "order-query".
    pub component: &'static str,
    /// Its declared access rule.
    pub rule: Rule,
}

impl Method {
    /// Whether the response is a stream of messages.
    pub fn server_streaming(&self) -> bool {
        self.descriptor.is_server_streaming()
    }

    /// Whether only service accounts may call it: such RPCs do not exist from outside.
    pub fn is_internal(&self) -> bool {
        self.rule.is_internal()
    }
}

/// Every routable RPC of the contracts, by path.
#[derive(Debug, Clone)]
pub struct Contracts {
    pool: DescriptorPool,
    methods: Arc<HashMap<String, Arc<Method>>>,
}

/// The component owning a proto package: `mercato.<domain>.v1` is served by the component
/// whose name without dashes is `<domain>` (`mercato.orderquery.v1` → `order-query`).
pub fn component_of(package: &str) -> Option<&'static str> {
    let domain = package.strip_prefix("mercato.")?.split('.').next()?;
    SERVICES
        .iter()
        .find(|service| service.replace('-', "") == domain)
        .copied()
}

impl Contracts {
    /// The table of the compiled Mercato contracts.
    pub fn mercato() -> Result<Self, ContractsError> {
        Self::from_descriptor_set(mercato::DESCRIPTOR_SET)
    }

    /// The table of an encoded FileDescriptorSet.
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Self, ContractsError> {
        let pool = DescriptorPool::decode(bytes)?;
        let policies = PolicyTable::from_pool(&pool)?;
        let mut methods = HashMap::new();
        for service in pool.services() {
            let Some(component) = component_of(service.package_name()) else {
                continue;
            };
            for descriptor in service.methods() {
                let path = format!("/{}/{}", service.full_name(), descriptor.name());
                let rule = policies.get(&path).cloned().unwrap_or(Rule::Deny);
                let method = Method {
                    path: path.clone(),
                    descriptor,
                    component,
                    rule,
                };
                methods.insert(path, Arc::new(method));
            }
        }
        Ok(Self {
            pool,
            methods: Arc::new(methods),
        })
    }

    /// The descriptor pool (messages for JSON, extensions for HTTP rules).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The RPC at `path`, internal ones included.
    pub fn method(&self, path: &str) -> Option<&Arc<Method>> {
        self.methods.get(path)
    }

    /// Every routable RPC, in path order (stable output for documents and tests).
    pub fn methods(&self) -> Vec<&Arc<Method>> {
        let mut all: Vec<_> = self.methods.values().collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        all
    }

    /// The component serving `service` (full name), when it has an RPC reachable from
    /// outside; `None` for unknown and service-only ones.
    pub fn public_component(&self, service: &str) -> Option<&'static str> {
        self.methods
            .values()
            .find(|m| !m.is_internal() && m.descriptor.parent_service().full_name() == service)
            .map(|m| m.component)
    }

    /// Services with at least one RPC reachable from outside, for reflection.
    pub fn public_services(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .methods
            .values()
            .filter(|m| !m.is_internal())
            .map(|m| m.descriptor.parent_service().full_name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_map_to_the_components_that_serve_them() {
        assert_eq!(component_of("mercato.catalog.v1"), Some("catalog"));
        assert_eq!(component_of("mercato.orderquery.v1"), Some("order-query"));
        assert_eq!(component_of("mercato.order.v1"), Some("order"));
        assert_eq!(component_of("mercato.events.v1"), None);
        assert_eq!(component_of("grpc.health.v1"), None);
    }

    #[test]
    fn the_table_knows_every_rpc_with_its_rule() {
        let contracts = Contracts::mercato().unwrap();
        let get = contracts
            .method("/mercato.catalog.v1.CatalogService/GetProduct")
            .unwrap();
        assert_eq!(get.component, "catalog");
        assert_eq!(get.rule, Rule::Public);
        assert!(
            contracts
                .method("/mercato.catalog.v1.CatalogService/BatchGetProducts")
                .unwrap()
                .is_internal()
        );
        let watch = contracts
            .method("/mercato.orderquery.v1.OrderQueryService/WatchOrder")
            .unwrap();
        assert!(watch.server_streaming());
        assert_eq!(watch.component, "order-query");
        assert!(
            contracts
                .public_services()
                .contains(&"mercato.identity.v1.IdentityService".to_owned())
        );
    }
}
