//! What server reflection on the gateway describes: exactly what the gateway serves. The
//! compiled descriptor set holds every RPC, service-only ones (ReserveStock, Charge,
//! BatchGetProducts, …) included, which the gateway refuses as unknown; advertising them
//! would tell an outsider they exist and send grpcurl users to calls that cannot work. So
//! reflection gets a copy, built once at start-up, without those methods and without the
//! services left with none. Their messages stay (a request type is only a type), and the
//! comments still belong to the right elements (source locations are renumbered).

use prost::Message as _;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::contracts::Contracts;

/// `FileDescriptorProto.service` and `ServiceDescriptorProto.method` field numbers, the
/// steps of a source location's path.
const SERVICE_FIELD: i32 = 6;
const METHOD_FIELD: i32 = 2;

/// `encoded` (a FileDescriptorSet) with only the RPCs `contracts` lets callers reach from
/// outside.
pub fn public_descriptor_set(
    encoded: &[u8],
    contracts: &Contracts,
) -> Result<FileDescriptorSet, prost::DecodeError> {
    let mut set = FileDescriptorSet::decode(encoded)?;
    for file in &mut set.file {
        keep_public(file, contracts);
    }
    Ok(set)
}

/// Where a kept service went: its new index, and its methods' new indexes (`None`: removed).
struct Kept {
    index: i32,
    methods: Vec<Option<i32>>,
}

fn keep_public(file: &mut FileDescriptorProto, contracts: &Contracts) {
    let package = file.package().to_owned();
    // Old index → new index, per service, and per method of each kept service.
    let mut services: Vec<Option<Kept>> = Vec::new();
    let mut kept = Vec::new();
    for service in std::mem::take(&mut file.service) {
        let full_name = if package.is_empty() {
            service.name().to_owned()
        } else {
            format!("{package}.{}", service.name())
        };
        let mut service = service;
        let mut methods = Vec::new();
        let mut next = 0;
        service.method.retain(|method| {
            let path = format!("/{full_name}/{}", method.name());
            let public = contracts.method(&path).is_some_and(|m| !m.is_internal());
            methods.push(public.then_some(next));
            next += i32::from(public);
            public
        });
        if service.method.is_empty() {
            services.push(None);
        } else {
            let index = i32::try_from(kept.len()).unwrap_or(i32::MAX);
            services.push(Some(Kept { index, methods }));
            kept.push(service);
        }
    }
    file.service = kept;
    if let Some(info) = file.source_code_info.as_mut() {
        info.location
            .retain_mut(|location| renumber(&mut location.path, &services));
    }
}

/// Points a source location at the element's new index; false when the element is gone.
fn renumber(path: &mut [i32], services: &[Option<Kept>]) -> bool {
    if path.first() != Some(&SERVICE_FIELD) || path.len() < 2 {
        return true;
    }
    let Some(Some(kept)) = usize::try_from(path[1]).ok().and_then(|i| services.get(i)) else {
        return false;
    };
    path[1] = kept.index;
    if path.len() >= 4 && path[2] == METHOD_FIELD {
        match usize::try_from(path[3])
            .ok()
            .and_then(|i| kept.methods.get(i))
        {
            Some(Some(method)) => path[3] = *method,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_only_rpcs_and_their_comments_are_left_out() {
        let contracts = Contracts::mercato().unwrap();
        let set = public_descriptor_set(mercato::DESCRIPTOR_SET, &contracts).unwrap();
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set).unwrap();
        let inventory = pool
            .get_service_by_name("mercato.inventory.v1.InventoryService")
            .unwrap();
        let names: Vec<String> = inventory.methods().map(|m| m.name().to_owned()).collect();
        assert!(names.contains(&"GetStock".to_owned()), "{names:?}");
        for internal in ["ReserveStock", "CommitReservation", "ReleaseReservation"] {
            assert!(!names.contains(&internal.to_owned()), "{names:?}");
        }
        // Every method left keeps its own comment, not a removed neighbour's.
        fn comment(method: &prost_reflect::MethodDescriptor) -> Option<String> {
            method
                .parent_file()
                .file_descriptor_proto()
                .source_code_info
                .as_ref()?
                .location
                .iter()
                .find(|l| l.path == method.path())?
                .leading_comments
                .clone()
        }
        let mut compared = 0;
        for service in pool.services() {
            for method in service.methods() {
                let original = contracts
                    .pool()
                    .get_service_by_name(service.full_name())
                    .and_then(|s| s.methods().find(|m| m.name() == method.name()))
                    .unwrap();
                assert_eq!(
                    comment(&method),
                    comment(&original),
                    "{}",
                    method.full_name()
                );
                compared += usize::from(comment(&method).is_some());
            }
        }
        assert!(compared > 20, "comments were kept ({compared})");
        assert!(
            pool.services()
                .flat_map(|s| s.methods().collect::<Vec<_>>())
                .all(|m| !contracts
                    .method(&format!("/{}/{}", m.parent_service().full_name(), m.name()))
                    .unwrap()
                    .is_internal())
        );
    }
}
