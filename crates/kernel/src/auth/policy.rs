//! Each RPC's declared access policy (`mercato.auth.v1.policy`), read from the descriptor set.

use std::collections::HashMap;
use std::sync::OnceLock;

use mercato::pb::auth::v1::{Access, Policy};
use prost_reflect::{DescriptorPool, Value};

use super::Principal;

/// The access rule of one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Anyone.
    Public,
    /// Any verified principal.
    Authenticated,
    /// A principal with one of these roles.
    Roles(Vec<String>),
    /// Declared without a usable policy: nobody.
    Deny,
}

impl Rule {
    /// True for RPCs that only service accounts may call (the "S" methods of the public API): never exposed publicly.
    pub fn is_internal(&self) -> bool {
        matches!(self, Rule::Roles(roles) if !roles.is_empty() && roles.iter().all(|r| r == super::ROLE_SERVICE))
    }

    /// Whether `principal` may call an RPC with this rule.
    pub fn decide(&self, principal: Option<&Principal>) -> Decision {
        match (self, principal) {
            (Rule::Public, _) => Decision::Allow,
            (Rule::Deny, _) => Decision::Forbidden,
            (_, None) => Decision::Unauthenticated,
            (Rule::Authenticated, Some(_)) => Decision::Allow,
            (Rule::Roles(roles), Some(p)) => {
                if roles.iter().any(|r| p.has_role(r)) {
                    Decision::Allow
                } else {
                    Decision::Forbidden
                }
            }
        }
    }
}

impl Decision {
    /// The status a refused caller gets; `Ok` when allowed.
    pub fn into_result(self) -> Result<(), tonic::Status> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Unauthenticated => Err(crate::error::unauthenticated(
                "MISSING_TOKEN",
                "this call needs a bearer token",
            )),
            Decision::Forbidden => Err(crate::error::permission_denied(
                "MISSING_ROLE",
                "the caller's roles do not allow this call",
            )),
        }
    }
}

/// The outcome of checking a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// A token is needed.
    Unauthenticated,
    /// The principal may not call this.
    Forbidden,
}

/// The descriptor set lacks what the policies need.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The option extension is missing from the set.
    #[error("extension mercato.auth.v1.policy is not in the descriptor set")]
    MissingExtension,
}

/// RPC path (`/package.Service/Method`) → rule, for every method in a descriptor set.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    rules: HashMap<String, Rule>,
}

impl PolicyTable {
    /// The table of every Mercato contract, built once per process.
    pub fn global() -> &'static PolicyTable {
        static TABLE: OnceLock<PolicyTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The descriptor set is compiled into the binary by build.rs; failing to read it is
            // a build defect, and an empty table denies every declared-only method.
            let denying_all = |err: &dyn std::fmt::Display| {
                tracing::error!(error = %err, "cannot read RPC policies; denying all");
                PolicyTable::default()
            };
            match crate::contracts::pool().map(PolicyTable::from_pool) {
                Ok(Ok(table)) => table,
                Ok(Err(err)) => denying_all(&err),
                Err(err) => denying_all(err),
            }
        })
    }

    /// Reads every method's policy from a descriptor pool.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, PolicyError> {
        let extension = pool
            .get_extension_by_name("mercato.auth.v1.policy")
            .ok_or(PolicyError::MissingExtension)?;
        let mut rules = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                let options = method.options();
                let rule = if options.has_extension(&extension) {
                    match options.get_extension(&extension).as_ref() {
                        Value::Message(message) => message
                            .transcode_to::<Policy>()
                            .map(|p| rule_of(&p))
                            .unwrap_or(Rule::Deny),
                        _ => Rule::Deny,
                    }
                } else {
                    Rule::Deny
                };
                rules.insert(format!("/{}/{}", service.full_name(), method.name()), rule);
            }
        }
        Ok(Self { rules })
    }

    /// The rule of the RPC at `path`, or `None` for a path no contract declares (health,
    /// reflection, or a method that does not exist).
    pub fn get(&self, path: &str) -> Option<&Rule> {
        self.rules.get(path)
    }

    /// Every (path, rule) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.rules.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn rule_of(policy: &Policy) -> Rule {
    match policy.access() {
        Access::Public => Rule::Public,
        Access::Authenticated => Rule::Authenticated,
        Access::Roles if !policy.roles.is_empty() => Rule::Roles(policy.roles.clone()),
        Access::Roles | Access::Unspecified => Rule::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            subject: "u1".into(),
            kind: PrincipalKind::User,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            token: String::new(),
        }
    }

    #[test]
    fn policies_are_read_from_the_compiled_contracts() {
        let table = PolicyTable::global();
        assert_eq!(
            table.get("/mercato.identity.v1.IdentityService/Register"),
            Some(&Rule::Public)
        );
        assert_eq!(
            table.get("/mercato.identity.v1.IdentityService/GetMe"),
            Some(&Rule::Authenticated)
        );
        assert_eq!(
            table.get("/mercato.catalog.v1.CatalogService/CreateProduct"),
            Some(&Rule::Roles(vec!["admin".into()]))
        );
        assert!(
            table
                .get("/mercato.catalog.v1.CatalogService/BatchGetProducts")
                .is_some_and(Rule::is_internal)
        );
        assert_eq!(table.get("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn every_declared_rpc_has_a_usable_policy() {
        for (path, rule) in PolicyTable::global().iter() {
            if path.starts_with("/mercato.") {
                assert_ne!(rule, &Rule::Deny, "{path} declares no usable policy");
            }
        }
    }

    #[test]
    fn decisions_follow_the_rules() {
        let admin = principal(&["customer", "admin"]);
        let customer = principal(&["customer"]);
        let admin_only = Rule::Roles(vec!["admin".into()]);
        assert_eq!(admin_only.decide(Some(&admin)), Decision::Allow);
        assert_eq!(admin_only.decide(Some(&customer)), Decision::Forbidden);
        assert_eq!(admin_only.decide(None), Decision::Unauthenticated);
        assert_eq!(Rule::Public.decide(None), Decision::Allow);
        assert_eq!(Rule::Authenticated.decide(None), Decision::Unauthenticated);
        assert_eq!(Rule::Deny.decide(Some(&admin)), Decision::Forbidden);
    }
}
